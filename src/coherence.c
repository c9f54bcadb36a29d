/*-------------------------------------------------------------------------
 *
 * coherence.c
 *		The transactional rules of the contract: no value that a committed
 *		write made stale is served once that commit has returned.
 *
 * Three mechanisms:
 *
 * 1. Commit-time re-invalidation.  Every invalidation (cache_delete,
 *    cache_invalidate_*, cache_flush, triggers) is applied at once and
 *    remembered in this transaction's list of operations; right after
 *    commit (XACT_EVENT_COMMIT, when the new rows are visible) it is
 *    published and applied again, removing values that readers who still
 *    saw the old rows cached meanwhile.
 *
 * 2. Leases, as in memcache.  A session that misses a key remembers the
 *    invalidation sequence number at that moment.  Commits publish their
 *    invalidations into a shared ring, each with a new sequence number.  A
 *    later cache_set of that key is refused when the ring holds a covering
 *    invalidation committed after the miss (or has forgotten that far back,
 *    in which case we refuse to be safe).  The check, the store and a
 *    second check happen in that order, so a commit that publishes between
 *    the first check and the store is caught either by the second check or
 *    by its own re-invalidation, which comes after publishing.
 *
 * 3. Pending sets.  Once a transaction has written (it has an XID), its
 *    cache_set calls join the list of operations and are applied after its
 *    commit-time invalidations, unless a covering invalidation by another
 *    transaction committed after they were made.  Subtransaction aborts
 *    drop their part of the list; the session reads its own pending values.
 *
 * The ring lives in shared memory, so leases need shared_preload_libraries
 * (for either store); without it, mechanisms 1 and 3 still work.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "cache.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

/* ---- the shared ring of committed invalidations ---- */

#define RING_SLOTS			4096
#define RING_TEXT			200
/* a commit with more invalidations publishes one "whole namespace" slot */
#define MAX_SLOTS_PER_COMMIT 256

typedef struct RingSlot
{
	uint64		seq;
	Oid			dbid;
	uint8		store;			/* CacheBackend */
	uint8		kind;			/* CacheOpKind */
	uint16		len;
	uint32		keyhash;		/* CACHE_OP_KEY */
	TransactionId xid;			/* the committing transaction, if it had one */
	char		text[RING_TEXT];
} RingSlot;

typedef struct Ring
{
	LWLock		lock;
	pg_atomic_uint64 last_seq;	/* newest published; readable unlocked */
	RingSlot	slots[RING_SLOTS];
} Ring;

static Ring *ring = NULL;

Size
cache_coherence_shmem_size(void)
{
	return sizeof(Ring);
}

void
cache_coherence_shmem_init(void)
{
	bool		found;

	ring = ShmemInitStruct("cache_ext invalidation ring", sizeof(Ring), &found);
	if (!found)
	{
		LWLockInitialize(&ring->lock, LWLockNewTrancheId());
		pg_atomic_init_u64(&ring->last_seq, 0);
		memset(ring->slots, 0, sizeof(ring->slots));
	}
	LWLockRegisterTranche(ring->lock.tranche, "cache_ext_ring");
}

static inline uint64
current_seq(void)
{
	return ring ? pg_atomic_read_u64(&ring->last_seq) : 0;
}

static uint32
text_hash(const char *s, int len)
{
	return hash_bytes((const unsigned char *) s, len);
}

static bool
slot_covers(RingSlot *slot, CacheBackend store, const char *key, int keylen,
			uint32 keyhash)
{
	if (slot->store != store)
		return false;
	/* Redis keys are shared by every database; shared-memory keys are not */
	if (store == CACHE_BACKEND_SHMEM && slot->dbid != MyDatabaseId)
		return false;
	switch ((CacheOpKind) slot->kind)
	{
		case CACHE_OP_KEY:
			/* long keys are compared by hash: a collision only refuses a set */
			if (slot->len != Min(keylen, RING_TEXT) || slot->keyhash != keyhash)
				return false;
			return keylen > RING_TEXT || memcmp(slot->text, key, keylen) == 0;
		case CACHE_OP_PREFIX:
			/* a long prefix was truncated, which only widens it */
			return keylen >= slot->len && memcmp(slot->text, key, slot->len) == 0;
		case CACHE_OP_PATTERN:
			return cache_glob_match(slot->text, slot->len, key, keylen);
		case CACHE_OP_ALL:
			return true;
		case CACHE_OP_SET:
		case CACHE_OP_SKIP:
			break;
	}
	return false;
}

/*
 * Did another transaction commit an invalidation covering this key after
 * sequence number "since"?  Slots in [skip_lo, skip_hi] are the caller's
 * own commit, which never refuses its own sets.
 */
static bool
ring_covers(uint64 since, const char *key, int keylen,
			uint64 skip_lo, uint64 skip_hi)
{
	uint32		keyhash;
	uint64		last;
	bool		covered = false;

	if (ring == NULL || since >= current_seq())
		return false;
	keyhash = text_hash(key, Min(keylen, RING_TEXT));
	LWLockAcquire(&ring->lock, LW_SHARED);
	last = pg_atomic_read_u64(&ring->last_seq);
	if (last - since > RING_SLOTS)
		covered = true;			/* forgotten: assume the worst */
	for (uint64 s = since + 1; s <= last && !covered; s++)
	{
		RingSlot   *slot = &ring->slots[s % RING_SLOTS];

		if (s >= skip_lo && s <= skip_hi)
			continue;
		covered = slot_covers(slot, cache_backend, key, keylen, keyhash);
	}
	LWLockRelease(&ring->lock);
	return covered;
}

/*
 * The ring's sequence number when this transaction first used the cache: a
 * lower bound for what its snapshot may not have seen.
 */
static LocalTransactionId xact_lxid = InvalidLocalTransactionId;
static uint64 xact_seq;

static void
note_xact_start(void)
{
	if (MyProc->lxid != xact_lxid)
	{
		xact_lxid = MyProc->lxid;
		xact_seq = current_seq();
	}
}

/*
 * In REPEATABLE READ and SERIALIZABLE a value comes from the transaction's
 * snapshot, which may be older than the miss: refuse a set when a covering
 * invalidation was committed by a transaction that snapshot does not see
 * (or when the ring has forgotten what happened since this transaction
 * started).  Invalidations before the transaction's first cache call that
 * already left the ring are not seen: 4096 commits are a wide margin.
 */
static bool
snapshot_missed_invalidation(const char *key, int keylen)
{
	Snapshot	snap;
	uint32		keyhash;
	uint64		last;
	bool		covered = false;

	if (ring == NULL || !IsolationUsesXactSnapshot() || !FirstSnapshotSet)
		return false;
	note_xact_start();
	snap = GetTransactionSnapshot();
	keyhash = text_hash(key, Min(keylen, RING_TEXT));
	LWLockAcquire(&ring->lock, LW_SHARED);
	last = pg_atomic_read_u64(&ring->last_seq);
	if (last - xact_seq >= RING_SLOTS)
		covered = true;
	for (uint64 s = (last > RING_SLOTS) ? last - RING_SLOTS + 1 : 1;
		 s <= last && !covered; s++)
	{
		RingSlot   *slot = &ring->slots[s % RING_SLOTS];

		covered = TransactionIdIsValid(slot->xid) &&
			slot_covers(slot, cache_backend, key, keylen, keyhash) &&
			XidInMVCCSnapshot(slot->xid, snap);
	}
	LWLockRelease(&ring->lock);
	return covered;
}

/* ---- this transaction's operations ---- */

typedef struct CacheOp
{
	CacheOpKind kind;
	CacheBackend store;
	SubTransactionId subid;
	int			keylen;
	char	   *key;			/* key, prefix or pattern */
	/* CACHE_OP_SET only */
	char	   *val;
	Size		vallen;
	int			ttl;
	uint64		lease;			/* stale if covered by a commit after this */
	bool		row_image;		/* by write-through: see deciding_op() */
	bool		spares_row_images;	/* invalidations: see deciding_op() */
	/* invalidations: the store's generation before they were applied */
	uint64		generation;
} CacheOp;

static bool
has_written(void)
{
	return TransactionIdIsValid(GetTopTransactionIdIfAny());
}

#define MAX_KEY_OPS 100000

static CacheOp *ops = NULL;		/* in TopTransactionContext */
static int	nkeyops[2];			/* CACHE_OP_KEY operations, per store */
static int	nops = 0;
static int	maxops = 0;
static int	nsets = 0;
static bool in_commit = false;

/*
 * An index of the operations, so that finding what decides a key does not
 * scan them all (a large UPDATE under a key template adds one per row, and
 * each row's trigger asks): the latest SET or KEY operation of each key, by
 * a hash of store and key, and the positions of the bulk operations.  In
 * TopTransactionContext; rebuilt when a subtransaction abort removes some.
 */
typedef struct KeyIndexEntry
{
	uint64		keyhash;
	int			last;			/* index in ops[] */
} KeyIndexEntry;

static HTAB *key_index = NULL;
static int *bulk_ops = NULL;
static int	nbulk = 0;
static int	maxbulk = 0;

static uint64
op_key_hash(CacheBackend store, const char *key, int keylen)
{
	return hash_bytes_extended((const unsigned char *) key, keylen, store);
}

static void
index_op(int i)
{
	CacheOp    *op = &ops[i];

	if (op->kind == CACHE_OP_SET || op->kind == CACHE_OP_KEY)
	{
		uint64		h = op_key_hash(op->store, op->key, op->keylen);
		KeyIndexEntry *e;

		if (key_index == NULL)
		{
			HASHCTL		ctl;

			ctl.keysize = sizeof(uint64);
			ctl.entrysize = sizeof(KeyIndexEntry);
			ctl.hcxt = TopTransactionContext;
			key_index = hash_create("cache_ext operations", 256, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		}
		e = hash_search(key_index, &h, HASH_ENTER, NULL);
		e->last = i;
		return;
	}
	if (nbulk == maxbulk)
	{
		maxbulk = Max(16, maxbulk * 2);
		bulk_ops = bulk_ops ?
			repalloc(bulk_ops, maxbulk * sizeof(int)) :
			MemoryContextAlloc(TopTransactionContext, maxbulk * sizeof(int));
	}
	bulk_ops[nbulk++] = i;
}

static void
reindex_ops(void)
{
	if (key_index)
		hash_destroy(key_index);
	key_index = NULL;
	nbulk = 0;
	for (int i = 0; i < nops; i++)
		index_op(i);
}

static CacheOp *
add_op(CacheOpKind kind, const char *key, int keylen)
{
	CacheOp    *op;

	if (nops == maxops)
	{
		maxops = Max(16, maxops * 2);
		ops = ops ?
			repalloc(ops, maxops * sizeof(CacheOp)) :
			MemoryContextAlloc(TopTransactionContext, maxops * sizeof(CacheOp));
	}
	op = &ops[nops++];
	memset(op, 0, sizeof(CacheOp));
	op->kind = kind;
	op->store = cache_backend;
	op->subid = GetCurrentSubTransactionId();
	op->keylen = keylen;
	op->key = MemoryContextAlloc(TopTransactionContext, Max(keylen, 1));
	memcpy(op->key, key, keylen);
	index_op(nops - 1);
	return op;
}

static bool
op_covers(CacheOp *op, const char *key, int keylen)
{
	switch (op->kind)
	{
		case CACHE_OP_SET:
		case CACHE_OP_KEY:
			return op->keylen == keylen && memcmp(op->key, key, keylen) == 0;
		case CACHE_OP_PREFIX:
			return keylen >= op->keylen && memcmp(op->key, key, op->keylen) == 0;
		case CACHE_OP_PATTERN:
			return cache_glob_match(op->key, op->keylen, key, keylen);
		case CACHE_OP_ALL:
			return true;
		case CACHE_OP_SKIP:
			break;
	}
	return false;
}

/*
 * The operation of this transaction that decides a key's state (of the
 * current store): the latest one covering it, except that a row image
 * stored by write-through outlives the later prefix invalidations of the
 * statement triggers of INSERT, UPDATE and DELETE, which say nothing about
 * that row (its own change comes as a key operation or a new image).  A
 * TRUNCATE's or an explicit invalidation removes it like any value.
 */
static CacheOp *
deciding_op(const char *key, int keylen)
{
	uint64		h = op_key_hash(cache_backend, key, keylen);
	KeyIndexEntry *e = key_index ? hash_search(key_index, &h, HASH_FIND, NULL) : NULL;
	CacheOp    *keyop = e ? &ops[e->last] : NULL;
	CacheOp    *bulk = NULL;
	CacheOp    *hard_bulk = NULL;

	/* a hash collision would only lose a pending value: a miss */
	if (keyop && (keyop->keylen != keylen || memcmp(keyop->key, key, keylen) != 0))
		keyop = NULL;
	for (int j = nbulk - 1; j >= 0 && (!keyop || bulk_ops[j] > e->last); j--)
	{
		CacheOp    *op = &ops[bulk_ops[j]];

		if (op->store != cache_backend || !op_covers(op, key, keylen))
			continue;
		if (bulk == NULL)
			bulk = op;
		if (hard_bulk == NULL && !op->spares_row_images)
			hard_bulk = op;
	}
	if (keyop && keyop->kind == CACHE_OP_SET && keyop->row_image)
		return hard_bulk ? hard_bulk : keyop;
	return bulk ? bulk : keyop;
}

/*
 * What this transaction's own operations say of a key: a pending value (a
 * copy in *value if value is not NULL, its TTL in *ttl if not NULL); gone,
 * when a transaction that has written invalidated it (the store may hold a
 * value cached meanwhile by a reader of the old rows, which this
 * transaction must not read back); or nothing, and the store decides.
 */
CachePending
cache_pending_lookup(const char *key, int keylen, text **value, int *ttl)
{
	CacheOp    *op;

	note_xact_start();
	if (nsets == 0 && (nops == 0 || !has_written()))
		return CACHE_PENDING_NONE;
	op = deciding_op(key, keylen);
	if (op == NULL)
		return CACHE_PENDING_NONE;
	if (op->kind != CACHE_OP_SET)
		return has_written() ? CACHE_PENDING_GONE : CACHE_PENDING_NONE;
	if (value)
		*value = cstring_to_text_with_len(op->val, op->vallen);
	if (ttl)
		*ttl = op->ttl;
	return CACHE_PENDING_VALUE;
}

/*
 * Called just before an invalidation is applied to the current store.
 * spares_row_images: see deciding_op().
 */
void
cache_note_invalidation(CacheOpKind kind, const char *arg, int len,
						bool spares_row_images)
{
	const CacheStore *store = cache_current_store();
	CacheOp    *op;

	/*
	 * Past MAX_KEY_OPS single keys (a huge UPDATE under a key template), one
	 * "whole namespace" operation stands for the rest, so that memory stays
	 * bounded.  It must come after every set it supersedes: add a new one
	 * whenever something was added since the last.
	 */
	if (kind == CACHE_OP_KEY && nkeyops[cache_backend] >= MAX_KEY_OPS)
	{
		if (nops > 0 && ops[nops - 1].kind == CACHE_OP_ALL &&
			ops[nops - 1].store == cache_backend)
			return;
		kind = CACHE_OP_ALL;
		arg = "";
		len = 0;
	}
	if (kind == CACHE_OP_KEY)
		nkeyops[cache_backend]++;
	op = add_op(kind, arg, len);

	op->spares_row_images = spares_row_images;

	if (store->generation)
		op->generation = store->generation();
}

/* Has nothing been added to the op's store since it was first applied? */
static bool
unchanged_since(CacheOp *op)
{
	const CacheStore *store = cache_current_store();

	return store->generation && store->generation() == op->generation;
}

/* ---- leases: the misses this session remembers ---- */

#define MAX_MISSES 65536

typedef struct MissEntry
{
	uint64		keyhash;		/* hash of store and key */
	uint64		seq;
} MissEntry;

static HTAB *misses = NULL;

static uint64
miss_hash(const char *key, int keylen)
{
	return hash_bytes_extended((const unsigned char *) key, keylen,
							   cache_backend);
}

/*
 * Remember a miss.  Hits are not reported: a hit leaves an earlier miss in
 * place (the contract speaks of sessions that missed), and costs nothing.
 */
void
cache_note_miss(const char *key, int keylen)
{
	uint64		h;
	MissEntry  *e;

	if (ring == NULL)
		return;
	if (misses == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(MissEntry);
		misses = hash_create("cache_ext misses", 1024, &ctl,
							 HASH_ELEM | HASH_BLOBS);
	}

	/*
	 * Past the limit forget everything: the sets that follow are then taken
	 * as blind sets, which the contract does not constrain.
	 */
	if (hash_get_num_entries(misses) >= MAX_MISSES)
	{
		hash_destroy(misses);
		misses = NULL;
		cache_note_miss(key, keylen);
		return;
	}
	/* the latest miss counts: "a later miss followed by a set stores" */
	h = miss_hash(key, keylen);
	e = hash_search(misses, &h, HASH_ENTER, NULL);
	e->seq = current_seq();
}

/* Take the lease of a key: true and its sequence number if it missed. */
static bool
take_lease(const char *key, int keylen, uint64 *seq)
{
	uint64		h;
	MissEntry  *e;

	if (misses == NULL)
		return false;
	h = miss_hash(key, keylen);
	e = hash_search(misses, &h, HASH_FIND, NULL);
	if (e == NULL)
		return false;
	*seq = e->seq;
	hash_search(misses, &h, HASH_REMOVE, NULL);
	return true;
}

/* ---- sets ---- */

/*
 * Store now unless stale: check, store, check again (see the header
 * comment).  "since" is the lease; skip_lo..skip_hi our own commit's slots.
 */
static bool
set_checked(const char *key, int keylen, const char *val, Size vallen,
			int ttl, uint64 since, uint64 skip_lo, uint64 skip_hi)
{
	uint64		before;

	if (ring_covers(since, key, keylen, skip_lo, skip_hi))
		return false;
	before = current_seq();
	if (!cache_store_set(key, keylen, val, vallen, ttl))
		return false;
	if (ring_covers(before, key, keylen, skip_lo, skip_hi))
	{
		cache_current_store()->del(key, keylen);
		return false;
	}
	return true;
}

static CacheOp *
add_set_op(const char *key, int keylen, const char *val, Size vallen,
		   int ttl, uint64 lease, bool row_image)
{
	CacheOp    *op = add_op(CACHE_OP_SET, key, keylen);

	op->val = MemoryContextAlloc(TopTransactionContext, Max(vallen, 1));
	memcpy(op->val, val, vallen);
	op->vallen = vallen;
	op->ttl = ttl;
	op->lease = lease;
	op->row_image = row_image;
	nsets++;
	return op;
}

CacheSetResult
cache_coherent_set(const char *key, int keylen, const char *val, Size vallen,
				   int ttl, bool row_image)
{
	uint64		lease;
	bool		missed = take_lease(key, keylen, &lease);

	if (!missed)
		lease = current_seq();
	else if (ring_covers(lease, key, keylen, 0, 0))
		return CACHE_SET_REFUSED;
	if (snapshot_missed_invalidation(key, keylen))
		return CACHE_SET_REFUSED;

	if (has_written())
	{
		add_set_op(key, keylen, val, vallen, ttl, lease, row_image);
		return CACHE_SET_PENDING;
	}
	if (!set_checked(key, keylen, val, vallen, ttl, lease, 0, 0))
		return CACHE_SET_REFUSED;

	/*
	 * Stored at once; but this transaction's own invalidations are applied
	 * again at commit, and must not wipe a value it set after them: keep it
	 * to store again after that.
	 */
	if (nops > nsets)
		add_set_op(key, keylen, val, vallen, ttl, current_seq(), row_image);
	return CACHE_SET_STORED;
}

/* ---- commit ---- */

static void
fill_slot(RingSlot *slot, uint64 seq, CacheOpKind kind, CacheBackend store,
		  const char *text, int len)
{
	/* a pattern too long to keep is widened to the whole namespace */
	if (kind == CACHE_OP_PATTERN && len > RING_TEXT)
		kind = CACHE_OP_ALL;
	slot->seq = seq;
	slot->xid = GetTopTransactionIdIfAny();
	slot->dbid = MyDatabaseId;
	slot->store = store;
	slot->kind = kind;
	slot->len = Min(len, RING_TEXT);
	memcpy(slot->text, text, slot->len);
	slot->keyhash = text_hash(text, slot->len);
}

/*
 * Publish this commit's invalidations; *lo..*hi are their sequence numbers.
 * A commit with very many (a large UPDATE under a key template) publishes
 * one "whole namespace" slot per store instead of flooding the ring.
 */
static void
ring_publish(uint64 *lo, uint64 *hi)
{
	int			ninval = 0;
	bool		stores[2] = {false, false};

	for (int i = 0; i < nops; i++)
		if (ops[i].kind != CACHE_OP_SET)
		{
			ninval++;
			stores[ops[i].store] = true;
		}
	*lo = 1;
	*hi = 0;
	if (ring == NULL || ninval == 0)
		return;

	LWLockAcquire(&ring->lock, LW_EXCLUSIVE);
	*lo = pg_atomic_read_u64(&ring->last_seq) + 1;
	*hi = *lo - 1;
	if (ninval > MAX_SLOTS_PER_COMMIT)
	{
		for (int st = 0; st < 2; st++)
			if (stores[st])
			{
				(*hi)++;
				fill_slot(&ring->slots[*hi % RING_SLOTS], *hi, CACHE_OP_ALL,
						  st, "", 0);
			}
	}
	else
	{
		for (int i = 0; i < nops; i++)
			if (ops[i].kind != CACHE_OP_SET)
			{
				(*hi)++;
				fill_slot(&ring->slots[*hi % RING_SLOTS], *hi, ops[i].kind,
						  ops[i].store, ops[i].key, ops[i].keylen);
			}
	}
	pg_atomic_write_u64(&ring->last_seq, *hi);
	LWLockRelease(&ring->lock);
}

/* Run a store operation of an op's store, as if that store were current. */
static void
apply_op(CacheOp *op, uint64 lo, uint64 hi)
{
	int			saved = cache_backend;

	cache_backend = op->store;
	PG_TRY();
	{
		switch ((op->kind != CACHE_OP_SET && unchanged_since(op)) ?
				CACHE_OP_SKIP : op->kind)
		{
			case CACHE_OP_KEY:
				cache_current_store()->del(op->key, op->keylen);
				break;
			case CACHE_OP_PREFIX:
				cache_current_store()->invalidate_prefix(op->key, op->keylen);
				break;
			case CACHE_OP_PATTERN:
				cache_current_store()->invalidate_pattern(op->key, op->keylen);
				break;
			case CACHE_OP_ALL:
				cache_current_store()->flush();
				break;
			case CACHE_OP_SKIP:
				break;
			case CACHE_OP_SET:
				/* decided by select_sets(): this set is the key's last word */
				set_checked(op->key, op->keylen, op->val, op->vallen,
							op->ttl, op->lease, lo, hi);
				break;
		}
	}
	PG_FINALLY();
	{
		cache_backend = saved;
	}
	PG_END_TRY();
}

static void
reset_ops(void)
{
	/* the memory goes with TopTransactionContext */
	ops = NULL;
	nops = maxops = nsets = 0;
	key_index = NULL;
	bulk_ops = NULL;
	nbulk = maxbulk = 0;
	nkeyops[0] = nkeyops[1] = 0;
}

/*
 * Mark the sets to apply at commit: for each key, only the one that
 * deciding_op() would pick.  One pass from the newest operation back, with
 * the keys already decided in a hash table, instead of one deciding_op()
 * call per set, which is quadratic in a transaction with many sets.
 */
static void
select_sets(bool *apply)
{
	HASHCTL		ctl;
	HTAB	   *decided;
	int		   *bulk = palloc(nops * sizeof(int));
	int			nbulk = 0;

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(uint64);
	ctl.hcxt = CurrentMemoryContext;
	decided = hash_create("cache_ext decided keys", 256, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int i = nops - 1; i >= 0; i--)
	{
		CacheOp    *op = &ops[i];
		uint64		h;
		bool		seen;

		apply[i] = false;
		if (op->kind != CACHE_OP_SET && op->kind != CACHE_OP_KEY)
		{
			bulk[nbulk++] = i;
			continue;
		}
		/* a hash collision would only drop a set: a miss, never stale */
		h = hash_bytes_extended((const unsigned char *) op->key, op->keylen,
								op->store);
		hash_search(decided, &h, HASH_ENTER, &seen);
		if (seen || op->kind == CACHE_OP_KEY)
			continue;
		apply[i] = true;
		for (int j = 0; j < nbulk; j++)
			if (ops[bulk[j]].store == op->store &&
				!(op->row_image && ops[bulk[j]].spares_row_images) &&
				op_covers(&ops[bulk[j]], op->key, op->keylen))
				apply[i] = false;
	}
	hash_destroy(decided);
	pfree(bulk);
}

/*
 * After commit nothing may raise an ERROR: store failures become warnings
 * (see cache_store_failure) and anything else is reported as a WARNING.
 */
static void
at_commit(void)
{
	uint64		lo;
	uint64		hi;
	MemoryContext oldcxt = CurrentMemoryContext;

	/* an ERROR resets these, but CommitTransaction holds interrupts */
	uint32		save_interrupt_holdoff = InterruptHoldoffCount;
	uint32		save_cancel_holdoff = QueryCancelHoldoffCount;
	uint32		save_crit_section = CritSectionCount;

	in_commit = true;
	PG_TRY();
	{
		bool	   *apply = palloc(nops * sizeof(bool));

		ring_publish(&lo, &hi);
		select_sets(apply);
		/* invalidations first, then the sets that survive them */
		for (int i = 0; i < nops; i++)
			if (ops[i].kind != CACHE_OP_SET)
				apply_op(&ops[i], lo, hi);
		for (int i = 0; i < nops; i++)
			if (apply[i])
				apply_op(&ops[i], lo, hi);
		pfree(apply);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		InterruptHoldoffCount = save_interrupt_holdoff;
		QueryCancelHoldoffCount = save_cancel_holdoff;
		CritSectionCount = save_crit_section;
		edata = CopyErrorData();
		FlushErrorState();
		edata->elevel = WARNING;
		ThrowErrorData(edata);
	}
	PG_END_TRY();
	in_commit = false;
}

bool
cache_in_commit(void)
{
	return in_commit;
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (nops > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that has pending cache_ext work"),
						 errdetail("Its cache invalidations and sets must run at commit, which a prepared transaction cannot promise.")));
			break;
		case XACT_EVENT_COMMIT:
			if (nops > 0)
				at_commit();
			reset_ops();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			in_commit = false;
			reset_ops();
			break;
		default:
			break;
	}
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	int			kept = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	for (int i = 0; i < nops; i++)
	{
		if (ops[i].subid == mySubid)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
			{
				nsets -= (ops[i].kind == CACHE_OP_SET);
				continue;
			}
			ops[i].subid = parentSubid;
		}
		ops[kept++] = ops[i];
	}
	if (kept != nops)
	{
		nops = kept;
		reindex_ops();
	}
}

void
cache_coherence_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}
