/*-------------------------------------------------------------------------
 *
 * coherence.c
 *		The transactional rules of the contract: no value that a committed
 *		write made stale is served once that commit has returned.
 *
 * THE PROTOCOL.  All of its state is one struct, Coherence (below): this
 * transaction's operations, and this session's leases.  Its invariants:
 *
 * I1 Every invalidation (cache_delete, cache_invalidate_*, cache_flush,
 *    triggers) is applied to its store at once and recorded as an
 *    operation of the transaction, naming its store.  Triggers record one
 *    per store a write invalidates (cache_written_stores()), whatever the
 *    session's cache_ext.backend.  An identical bulk operation already
 *    applied in this transaction, with no set recorded since, is not
 *    applied or recorded again (merging).
 *
 * I2 At commit the invalidations are published into a shared ring, each
 *    with a new sequence number (XACT_EVENT_COMMIT: the new rows are
 *    visible, the transaction's locks still held, so this is cheap), and
 *    then applied again (the "repeat") once the locks are released
 *    (RESOURCE_RELEASE_AFTER_LOCKS, still before the commit returns to its
 *    client), so that values cached meanwhile by readers of the old rows
 *    go.  The repeat of Redis operations is bounded by
 *    cache_ext.redis_command_timeout as a whole and gives way to a cancel.
 *
 * I3 A Redis invalidation is never lost.  One that fails (or is not tried
 *    because the queue shows Redis is failing) marks the transaction; at
 *    PRE_COMMIT all of its Redis invalidations are pushed to the durable
 *    invalidation queue (invalq.h), to be delivered once it has committed;
 *    the repeat still runs after the publish.  If they cannot be queued
 *    the transaction fails.  What the repeat cannot deliver (out of time,
 *    canceled, Redis failing) is queued too.  While an item is queued,
 *    reads of the keys it covers miss and sets of them are refused.
 *
 * I4 Leases.  A session that misses a key remembers the ring's sequence
 *    number then; a set of that key is refused if the ring holds a
 *    covering invalidation committed by another transaction after it.  The
 *    check is made before the store and again after it from the same
 *    number, so a commit that publishes in between is seen by the second
 *    check or removes the value by its repeat, which follows its publish.
 *    When in doubt, refuse: a lease older than the ring, or one the
 *    session had to forget (too many misses: the forgotten filter keeps
 *    the oldest sequence number per hash bucket), refuses the set.
 *
 * I5 Snapshots.  A value is computed from a snapshot: the transaction's
 *    (REPEATABLE READ, SERIALIZABLE) or the statement's (READ COMMITTED).
 *    A set is refused when the ring holds a covering invalidation of a
 *    transaction that snapshot does not see.  Each slot records the next
 *    XID at publish, so the scan stops at the first slot published before
 *    any XID the snapshot could miss (its xmin); for slots the ring has
 *    overwritten, it keeps the newest XID per hash bucket, and refuses when
 *    one that could cover the key is not before the snapshot's xmin.
 *
 * I6 Pending sets.  Once a transaction has written (it has an XID), its
 *    sets join its operations and are applied after its own repeat, only
 *    if no covering invalidation of another transaction committed after
 *    they were made and none is queued; a subtransaction abort drops its
 *    part.  The session reads its own pending values; a key it invalidated
 *    reads as a miss.  Sets made before the first write are stored at once.
 *
 * I7 Bounds.  Past MAX_KEY_OPS keys per store, a trigger's keys are
 *    widened to their namespace prefix (a template's text before its first
 *    placeholder), never further; explicit deletes past it are an ERROR.
 *    Past MAX_PENDING_SETS sets or MAX_PENDING_BYTES of values, a set is
 *    not kept: it returns false and the key is invalidated at commit.
 *
 * Hot standbys (coherence_wal.c): with cache_ext.wal_invalidations on,
 * PRE_COMMIT also writes the transaction's invalidations into one WAL
 * record, before its commit record; its redo applies them on standbys and
 * in crash recovery, and publishes them into the standby's ring.
 *
 * The ring and the queue live in shared memory, so I3-I5 need
 * shared_preload_libraries; without it, I1, I2 and I6 still hold, and a
 * Redis invalidation that cannot be delivered fails its transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "cache.h"
#include "common/hashfn.h"
#include "coherence_ring.h"
#include "coherence_wal.h"
#include "invalq.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

/* ---- the coherence state ---- */

typedef struct CacheOp
{
	CacheOpKind kind;
	const CacheStore *store;
	SubTransactionId subid;
	int			keylen;
	char	   *key;			/* key, prefix or pattern */
	int			nslen;			/* key[0..nslen) covers it (I7) */
	/* CACHE_OP_SET only */
	char	   *val;
	Size		vallen;
	int			ttl;
	uint64		lease;			/* stale if covered by a commit after this */
	bool		row_image;		/* by write-through: see deciding_op() */
	/* invalidations */
	bool		spares_row_images;	/* see deciding_op() */
	bool		delivered;		/* applied to its store now without failure */
	uint64		generation;		/* the store's, before it was applied */
} CacheOp;

/* an entry of the index of bulk operations, for merging (I1) */
typedef struct BulkIndexEntry
{
	uint64		hash;
	int			last;			/* index in ops[] */
} BulkIndexEntry;

/* an entry of the index of key operations */
typedef struct KeyIndexEntry
{
	uint64		keyhash;
	int			last;			/* index in ops[] */
} KeyIndexEntry;

/* a miss this session remembers (I4) */
typedef struct MissEntry
{
	uint64		keyhash;		/* hash of store and key */
	uint64		seq;
} MissEntry;

#define MAX_KEY_OPS			100000
#define MAX_PENDING_SETS	100000
#define MAX_PENDING_BYTES	((Size) 64 * 1024 * 1024)
#define MAX_MISSES			65536
#define FORGOTTEN_SLOTS		65536

typedef struct Coherence
{
	/* ---- this transaction; memory in TopTransactionContext ---- */
	CacheOp    *ops;
	int			nops;
	int			maxops;
	int			nsets;
	Size		set_bytes;
	int			last_set;		/* index of the latest SET, or -1 */
	int			nkeyops[CACHE_NUM_STORES];
	HTAB	   *key_index;		/* latest SET or KEY per (store, key) */
	HTAB	   *bulk_index;		/* latest bulk op per (store, kind, text) */
	int		   *bulk_ops;		/* positions of the bulk ops, in order */
	int			nbulk;
	int			maxbulk;
	bool		wrote;			/* a trigger invalidated for a write */
	bool		redis_undelivered;	/* I3: a Redis invalidation failed */
	bool		redis_queued;	/* I3: all queued at PRE_COMMIT */
	bool		repeat_pending; /* committed; the repeat is still to run */
	uint64		own_lo;			/* our commit's ring slots */
	uint64		own_hi;
	bool		in_commit;

	/* ---- this session ---- */
	HTAB	   *misses;
	uint64	   *forgotten;		/* FORGOTTEN_SLOTS sequence numbers, or NULL */
} Coherence;

static Coherence co = {.last_set = -1};

/*
 * A transaction has written once it has an XID, or once a trigger has
 * invalidated for it (a write to a foreign table takes no local XID).
 */
static bool
has_written(void)
{
	return co.wrote || TransactionIdIsValid(GetTopTransactionIdIfAny());
}

static uint64
op_key_hash(CacheBackend store, const char *key, int keylen)
{
	return hash_bytes_extended((const unsigned char *) key, keylen, store);
}

static uint64
bulk_hash(CacheBackend store, CacheOpKind kind, bool spares,
		  const char *text, int len)
{
	return hash_bytes_extended((const unsigned char *) text, len,
							   store | (kind << 4) | (spares << 8));
}

static HTAB *
index_create(const char *name, Size entrysize)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = entrysize;
	ctl.hcxt = TopTransactionContext;
	return hash_create(name, 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static void
reset_xact(void)
{
	/* the memory goes with TopTransactionContext */
	co.ops = NULL;
	co.nops = co.maxops = co.nsets = 0;
	co.set_bytes = 0;
	co.last_set = -1;
	memset(co.nkeyops, 0, sizeof(co.nkeyops));
	co.key_index = co.bulk_index = NULL;
	co.bulk_ops = NULL;
	co.nbulk = co.maxbulk = 0;
	co.wrote = co.redis_undelivered = co.redis_queued = co.repeat_pending = false;
	co.own_lo = 1;
	co.own_hi = 0;
	co.in_commit = false;
}

static void
index_op(int i)
{
	CacheOp    *op = &co.ops[i];
	bool		found;

	if (op->kind == CACHE_OP_SET || op->kind == CACHE_OP_KEY)
	{
		uint64		h = op_key_hash(op->store->id, op->key, op->keylen);
		KeyIndexEntry *e;

		if (co.key_index == NULL)
			co.key_index = index_create("cache_ext key operations",
										sizeof(KeyIndexEntry));
		e = hash_search(co.key_index, &h, HASH_ENTER, &found);
		e->last = i;
		if (op->kind == CACHE_OP_SET)
			co.last_set = i;
		return;
	}
	if (co.nbulk == co.maxbulk)
	{
		co.maxbulk = Max(16, co.maxbulk * 2);
		co.bulk_ops = co.bulk_ops ?
			repalloc(co.bulk_ops, co.maxbulk * sizeof(int)) :
			MemoryContextAlloc(TopTransactionContext, co.maxbulk * sizeof(int));
	}
	co.bulk_ops[co.nbulk++] = i;
	{
		uint64		h = bulk_hash(op->store->id, op->kind, op->spares_row_images,
								  op->key, op->keylen);
		BulkIndexEntry *e;

		if (co.bulk_index == NULL)
			co.bulk_index = index_create("cache_ext bulk operations",
										 sizeof(BulkIndexEntry));
		e = hash_search(co.bulk_index, &h, HASH_ENTER, &found);
		e->last = i;
	}
}

static void
reindex_ops(void)
{
	if (co.key_index)
		hash_destroy(co.key_index);
	if (co.bulk_index)
		hash_destroy(co.bulk_index);
	co.key_index = co.bulk_index = NULL;
	co.nbulk = 0;
	co.last_set = -1;
	for (int i = 0; i < co.nops; i++)
		index_op(i);
}

static CacheOp *
add_op(const CacheStore *store, CacheOpKind kind, const char *key, int keylen)
{
	CacheOp    *op;

	if (co.nops == co.maxops)
	{
		co.maxops = Max(16, co.maxops * 2);
		co.ops = co.ops ?
			repalloc(co.ops, co.maxops * sizeof(CacheOp)) :
			MemoryContextAlloc(TopTransactionContext, co.maxops * sizeof(CacheOp));
	}
	op = &co.ops[co.nops++];
	memset(op, 0, sizeof(CacheOp));
	op->kind = kind;
	op->store = store;
	op->subid = GetCurrentSubTransactionId();
	op->keylen = keylen;
	op->nslen = keylen;
	op->key = MemoryContextAlloc(TopTransactionContext, Max(keylen, 1));
	memcpy(op->key, key, keylen);
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
	}
	return false;
}

/*
 * The operation of this transaction that decides a key's state in a store:
 * the latest one covering it, except that a row image stored by
 * write-through outlives the later prefix invalidations of the triggers of
 * INSERT, UPDATE and DELETE, which say nothing about that row (its own
 * change comes as a key operation or a new image).  A TRUNCATE's or an
 * explicit invalidation removes it like any value.
 */
static CacheOp *
deciding_op(const CacheStore *store, const char *key, int keylen)
{
	uint64		h = op_key_hash(store->id, key, keylen);
	KeyIndexEntry *e = co.key_index ?
		hash_search(co.key_index, &h, HASH_FIND, NULL) : NULL;
	CacheOp    *keyop = e ? &co.ops[e->last] : NULL;
	CacheOp    *bulk = NULL;
	CacheOp    *hard_bulk = NULL;

	/* a hash collision would only lose a pending value: a miss */
	if (keyop && (keyop->keylen != keylen || memcmp(keyop->key, key, keylen) != 0))
		keyop = NULL;
	for (int j = co.nbulk - 1; j >= 0 && (!keyop || co.bulk_ops[j] > e->last); j--)
	{
		CacheOp    *op = &co.ops[co.bulk_ops[j]];

		if (op->store != store || !op_covers(op, key, keylen))
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
 * What this transaction's own operations say of a key (I6): a pending
 * value (a copy in *value if value is not NULL, its TTL in *ttl if not
 * NULL); gone, when a transaction that has written invalidated it (the
 * store may hold a value cached meanwhile by a reader of the old rows,
 * which this transaction must not read back); or nothing, and the store
 * decides.
 */
CachePending
cache_pending_lookup(const CacheStore *store, const char *key, int keylen,
					 text **value, int *ttl)
{
	CacheOp    *op;

	if (co.nops == 0)
		return CACHE_PENDING_NONE;
	if (co.nsets == 0 && !has_written())
		return CACHE_PENDING_NONE;
	op = deciding_op(store, key, keylen);
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

/* ---- invalidations (I1, I3, I7) ---- */

/* Run an invalidation on its store; true if the store did not fail. */
static bool
run_invalidation(const CacheStore *store, CacheOpKind kind, const char *arg,
				 int len, int64 *removed)
{
	uint64		failures = cache_store_failures;

	switch (kind)
	{
		case CACHE_OP_KEY:
			*removed = store->del(arg, len) ? 1 : 0;
			break;
		case CACHE_OP_PREFIX:
			*removed = store->invalidate_prefix(arg, len);
			break;
		case CACHE_OP_PATTERN:
			*removed = store->invalidate_pattern(arg, len);
			break;
		case CACHE_OP_ALL:
			*removed = store->flush();
			break;
		default:
			*removed = 0;
			break;
	}
	return cache_store_failures == failures;
}

/*
 * Apply an invalidation now and record it.  nslen: arg[0..nslen) is the
 * namespace it may be widened to (nslen == len: none).  Returns how many
 * keys were removed.
 */
int64
cache_coherent_invalidate(const CacheStore *store, CacheOpKind kind,
						  const char *arg, int len, int nslen, int flags)
{
	CacheOp    *op;
	int64		removed = 0;
	bool		redis = (store->id == CACHE_BACKEND_REDIS);
	bool		spares_row_images = (flags & CACHE_INV_SPARES_ROW_IMAGES) != 0;

	if (flags & CACHE_INV_BY_WRITE)
		co.wrote = true;

	/* I7: past MAX_KEY_OPS, a trigger's key stands for its namespace */
	if (kind == CACHE_OP_KEY && co.nkeyops[store->id] >= MAX_KEY_OPS)
	{
		if (nslen >= len)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many cache keys invalidated in one transaction"),
					 errdetail("A transaction can invalidate at most %d keys one by one.",
							   MAX_KEY_OPS),
					 errhint("Use cache_invalidate_prefix() or cache_invalidate_pattern() for many keys.")));
		kind = CACHE_OP_PREFIX;
		len = nslen;
	}

	/*
	 * I1: a write's identical bulk operation, with no set since, is applied
	 * already: what others cached meanwhile came from rows this transaction
	 * has not committed yet, and the repeat removes it.  Explicit calls are
	 * never merged: they promise to act at once.
	 */
	if ((flags & CACHE_INV_BY_WRITE) && kind != CACHE_OP_KEY &&
		co.bulk_index != NULL)
	{
		uint64		h = bulk_hash(store->id, kind, spares_row_images, arg, len);
		BulkIndexEntry *e = hash_search(co.bulk_index, &h, HASH_FIND, NULL);

		if (e != NULL && e->last > co.last_set &&
			co.ops[e->last].keylen == len &&
			memcmp(co.ops[e->last].key, arg, len) == 0 &&
			(co.ops[e->last].delivered || !redis))
			return 0;
	}

	op = add_op(store, kind, arg, len);
	op->nslen = Min(nslen, len);
	op->spares_row_images = spares_row_images;
	if (kind == CACHE_OP_KEY)
		co.nkeyops[store->id]++;
	if (store->generation)
		op->generation = store->generation();
	index_op(co.nops - 1);

	/*
	 * I3: while the queue holds invalidations, Redis is failing or they are
	 * not delivered yet: this one goes behind them rather than around (the
	 * transaction queues it at PRE_COMMIT).  In "error" mode it is tried
	 * all the same, so that a Redis that cannot take it fails the statement.
	 */
	if (redis && cache_queue_nonempty())
	{
		if (cache_on_error == CACHE_ON_ERROR_ERROR)
			run_invalidation(store, kind, arg, len, &removed);
		op->delivered = false;
	}
	else
		op->delivered = run_invalidation(store, kind, arg, len, &removed);

	/* with no Redis configured there is nothing stale to remove later */
	if (redis && !op->delivered && cache_redis_configured())
	{
		co.redis_undelivered = true;
		cache_stat_add(CACHE_BACKEND_REDIS, CACHE_STAT_INV_FAILED, 1);
	}
	return removed;
}

/* ---- leases (I4) ---- */

static uint64
miss_hash(const CacheStore *store, const char *key, int keylen)
{
	return hash_bytes_extended((const unsigned char *) key, keylen,
							   store->id);
}

/*
 * The misses table is full: fold it into the forgotten filter, which
 * keeps, per hash bucket, the oldest sequence number of a lease forgotten
 * there.  A set of a key without a lease in a bucket that holds one is
 * checked from that number (I4: never an unchecked set).
 */
static void
forget_misses(void)
{
	HASH_SEQ_STATUS status;
	MissEntry  *e;

	if (co.forgotten == NULL)
	{
		co.forgotten = MemoryContextAlloc(TopMemoryContext,
										  FORGOTTEN_SLOTS * sizeof(uint64));
		memset(co.forgotten, 0xff, FORGOTTEN_SLOTS * sizeof(uint64));
	}
	hash_seq_init(&status, co.misses);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		uint64	   *slot = &co.forgotten[e->keyhash % FORGOTTEN_SLOTS];

		*slot = Min(*slot, e->seq);
	}
	hash_destroy(co.misses);
	co.misses = NULL;
}

/*
 * Remember a miss.  Hits are not reported: a hit leaves an earlier miss in
 * place (the contract speaks of sessions that missed), and costs nothing.
 */
void
cache_note_miss(const CacheStore *store, const char *key, int keylen)
{
	uint64		h;
	MissEntry  *e;

	if (!cache_ring_available())
		return;
	if (co.misses == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(MissEntry);
		co.misses = hash_create("cache_ext misses", 1024, &ctl,
								HASH_ELEM | HASH_BLOBS);
	}
	else if (hash_get_num_entries(co.misses) >= MAX_MISSES)
	{
		forget_misses();
		cache_note_miss(store, key, keylen);
		return;
	}
	/* the latest miss counts: "a later miss followed by a set stores" */
	h = miss_hash(store, key, keylen);
	e = hash_search(co.misses, &h, HASH_ENTER, NULL);
	/* on a standby, before replayed invalidations not yet visible */
	e->seq = cache_ring_lease_seq();
}

/*
 * Take the lease of a key: its sequence number, or failing that the one
 * the forgotten filter holds for it; false for a blind set.
 */
static bool
take_lease(const CacheStore *store, const char *key, int keylen, uint64 *seq)
{
	uint64		h = miss_hash(store, key, keylen);
	MissEntry  *e;

	if (co.misses != NULL &&
		(e = hash_search(co.misses, &h, HASH_FIND, NULL)) != NULL)
	{
		*seq = e->seq;
		hash_search(co.misses, &h, HASH_REMOVE, NULL);
		return true;
	}
	if (co.forgotten != NULL && co.forgotten[h % FORGOTTEN_SLOTS] != PG_UINT64_MAX)
	{
		*seq = co.forgotten[h % FORGOTTEN_SLOTS];
		return true;
	}
	return false;
}

/* ---- sets (I4, I5, I6) ---- */

/* Is a set of this key refused by a queued Redis invalidation (I3)? */
static inline bool
queued_covers(const CacheStore *store, const char *key, int keylen)
{
	return store->id == CACHE_BACKEND_REDIS && cache_queue_nonempty() &&
		cache_queue_covers(key, keylen);
}

/*
 * Store now unless stale: check, store, check again from the same lease
 * (I4).  skip_lo..skip_hi are our own commit's slots.
 */
static bool
set_checked(const CacheStore *store, const char *key, int keylen,
			const char *val, Size vallen, int ttl, uint64 since,
			uint64 skip_lo, uint64 skip_hi)
{
	if (cache_ring_covers(store->id, since, key, keylen, skip_lo, skip_hi) ||
		queued_covers(store, key, keylen))
		return false;
	if (!cache_store_set(store, key, keylen, val, vallen, ttl))
		return false;
	if (cache_ring_covers(store->id, since, key, keylen, skip_lo, skip_hi) ||
		queued_covers(store, key, keylen))
	{
		store->del(key, keylen);
		return false;
	}
	return true;
}

static void
add_set_op(const CacheStore *store, const char *key, int keylen,
		   const char *val, Size vallen, int ttl, uint64 lease,
		   bool row_image)
{
	CacheOp    *op = add_op(store, CACHE_OP_SET, key, keylen);

	op->val = MemoryContextAlloc(TopTransactionContext, Max(vallen, 1));
	memcpy(op->val, val, vallen);
	op->vallen = vallen;
	op->ttl = ttl;
	op->lease = lease;
	op->row_image = row_image;
	co.nsets++;
	co.set_bytes += vallen + keylen;
	index_op(co.nops - 1);
}

CacheSetResult
cache_coherent_set(const CacheStore *store, const char *key, int keylen,
				   const char *val, Size vallen, int ttl, bool row_image)
{
	uint64		lease;
	bool		missed = take_lease(store, key, keylen, &lease);
	if (!missed)
		lease = cache_ring_seq();
	else if (cache_ring_covers(store->id, lease, key, keylen, 0, 0))
		return CACHE_SET_REFUSED;
	if (cache_ring_snapshot_missed(store->id, key, keylen) ||
		queued_covers(store, key, keylen))
		return CACHE_SET_REFUSED;

	if (has_written())
	{
		/* I7: a transaction keeps a bounded amount of pending values */
		if (co.nsets >= MAX_PENDING_SETS ||
			co.set_bytes + vallen + keylen > MAX_PENDING_BYTES)
			return CACHE_SET_TOO_MANY;
		add_set_op(store, key, keylen, val, vallen, ttl, lease, row_image);
		return CACHE_SET_PENDING;
	}
	if (!set_checked(store, key, keylen, val, vallen, ttl, lease, 0, 0))
		return CACHE_SET_REFUSED;

	/*
	 * Stored at once; but this transaction's own invalidations are applied
	 * again at commit, and must not wipe a value it set after them: keep it
	 * to store again after that.
	 */
	if (co.nops > co.nsets && co.nsets < MAX_PENDING_SETS &&
		co.set_bytes + vallen + keylen <= MAX_PENDING_BYTES)
		add_set_op(store, key, keylen, val, vallen, ttl, cache_ring_seq(),
				   row_image);
	return CACHE_SET_STORED;
}

/* ---- commit (I2, I3) ---- */

/*
 * Publish this commit's invalidations into the ring (coherence_ring.c);
 * co.own_lo..own_hi are their sequence numbers.
 */
static void
publish(void)
{
	CacheRingItem *items;
	int			n = 0;

	/*
	 * The commit record is written: an ERROR here would be a PANIC.  Out of
	 * memory, publish one "whole namespace" item per store instead, which
	 * only refuses more sets.
	 */
	items = MemoryContextAllocExtended(CurrentMemoryContext,
									   Max(co.nops, 1) * sizeof(CacheRingItem),
									   MCXT_ALLOC_NO_OOM);
	if (items == NULL)
	{
		CacheRingItem all[CACHE_NUM_STORES];

		for (int st = 0; st < CACHE_NUM_STORES; st++)
			all[st] = (CacheRingItem) {st, CACHE_OP_ALL, "", 0};
		cache_ring_publish(CACHE_NUM_STORES, all, &co.own_lo, &co.own_hi);
		return;
	}
	for (int i = 0; i < co.nops; i++)
	{
		CacheOp    *op = &co.ops[i];

		if (op->kind == CACHE_OP_SET)
			continue;
		items[n].store = op->store->id;
		items[n].kind = op->kind;
		items[n].text = op->key;
		items[n].len = op->keylen;
		n++;
	}
	cache_ring_publish(n, items, &co.own_lo, &co.own_hi);
	pfree(items);
}

/*
 * Is this invalidation superseded by an identical later one?  Only the
 * last of identical operations is repeated at commit.
 */
static bool
repeated_later(int i)
{
	CacheOp    *op = &co.ops[i];
	uint64		h = bulk_hash(op->store->id, op->kind, op->spares_row_images,
							  op->key, op->keylen);
	BulkIndexEntry *e = hash_search(co.bulk_index, &h, HASH_FIND, NULL);

	return e != NULL && e->last != i;
}

/* The Redis invalidations ops[from..] to queue items, and queue them. */
static bool
queue_redis_ops(int from, TransactionId wait_xid)
{
	CacheQueueItem *items = palloc(Max(co.nops - from, 1) * sizeof(CacheQueueItem));
	int			n = 0;
	bool		ok;

	for (int i = from; i < co.nops; i++)
	{
		CacheOp    *op = &co.ops[i];

		if (op->kind == CACHE_OP_SET || op->store->id != CACHE_BACKEND_REDIS ||
			(op->kind != CACHE_OP_KEY && repeated_later(i)))
			continue;
		items[n].kind = op->kind;
		items[n].text = op->key;
		items[n].len = op->keylen;
		items[n].nslen = op->nslen;
		n++;
	}
	ok = (n == 0) || cache_queue_push(n, items, wait_xid);
	if (ok)
		cache_stat_add(CACHE_BACKEND_REDIS, CACHE_STAT_QUEUE_PUSHED, n);
	pfree(items);
	return ok;
}

/*
 * Issue 15: this transaction's invalidations (not its sets; of identical
 * bulk operations only the last) go into one WAL record, for hot standbys
 * and crash recovery (coherence_wal.c).  Nothing when
 * cache_ext.wal_invalidations is off or during recovery.
 */
static void
log_to_wal(void)
{
	CacheWalOp *ops;
	int			n = 0;

	if (!cache_wal_enabled())
		return;
	ops = palloc(co.nops * sizeof(CacheWalOp));
	for (int i = 0; i < co.nops; i++)
	{
		CacheOp    *op = &co.ops[i];

		if (op->kind == CACHE_OP_SET ||
			(op->kind != CACHE_OP_KEY && repeated_later(i)))
			continue;
		ops[n].store = op->store->id;
		ops[n].kind = op->kind;
		ops[n].text = op->key;
		ops[n].len = op->keylen;
		ops[n].nslen = op->nslen;
		n++;
	}
	cache_wal_log(n, ops);
	pfree(ops);
}

/*
 * I3 at PRE_COMMIT: a Redis invalidation failed, so hand them all to the
 * queue before the commit record is written; the worker delivers them
 * once this transaction is over.  Failing that, the transaction fails:
 * better than committing a write whose invalidation is lost.
 */
static void
pre_commit(void)
{
	/*
	 * Hot standbys and crash recovery (coherence_wal.c): every invalidation
	 * of the transaction is known now (deferred triggers have fired) and the
	 * commit record is still to come, which the standby's redo relies on.
	 */
	log_to_wal();
	if (!co.redis_undelivered)
		return;
	if (!queue_redis_ops(0, GetTopTransactionIdIfAny()))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("cache_ext: could not invalidate Redis keys, nor queue the invalidation"),
				 cache_queue_available() ?
				 errdetail("The invalidation queue is full.") :
				 errdetail("Queueing invalidations needs shared_preload_libraries = 'cache_ext'."),
				 errhint("The transaction was rolled back so that Redis keeps no value it made stale.")));
	co.redis_queued = true;
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
	int		   *bulk = palloc(co.nops * sizeof(int));
	int			nbulk = 0;

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(uint64);
	ctl.hcxt = CurrentMemoryContext;
	decided = hash_create("cache_ext decided keys", 256, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int i = co.nops - 1; i >= 0; i--)
	{
		CacheOp    *op = &co.ops[i];
		uint64		h;
		bool		seen;

		apply[i] = false;
		if (op->kind != CACHE_OP_SET && op->kind != CACHE_OP_KEY)
		{
			bulk[nbulk++] = i;
			continue;
		}
		/* a hash collision would only drop a set: a miss, never stale */
		h = op_key_hash(op->store->id, op->key, op->keylen);
		hash_search(decided, &h, HASH_ENTER, &seen);
		if (seen || op->kind == CACHE_OP_KEY)
			continue;
		apply[i] = true;
		for (int j = 0; j < nbulk; j++)
			if (co.ops[bulk[j]].store == op->store &&
				!(op->row_image && co.ops[bulk[j]].spares_row_images) &&
				op_covers(&co.ops[bulk[j]], op->key, op->keylen))
				apply[i] = false;
	}
	hash_destroy(decided);
	pfree(bulk);
}

/* Has nothing been added to the op's store since it was first applied? */
static bool
unchanged_since(CacheOp *op)
{
	return op->store->generation &&
		op->store->generation() == op->generation;
}

/* the invalidation the repeat is at, for after_commit()'s error path */
static int	repeat_next = 0;

/*
 * I2: the repeat, after the locks are released.  Redis work is bounded by
 * the command timeout as a whole and gives way to a cancel; what it does
 * not deliver goes to the queue.  Nothing here may raise an ERROR: the
 * transaction has committed.
 */
static void
repeat_after_commit(void)
{
	bool	   *apply = palloc0(co.nops * sizeof(bool));

	/*
	 * Even what was queued at PRE_COMMIT is repeated here, now that the ring
	 * has the commit: the worker may have delivered it between the end of
	 * the transaction and the publish, when a reader's set was checked
	 * against neither (Redis answered then).  If the repeat fails, it is
	 * not queued again: it is in the queue, or was delivered just now.
	 */
	bool		skip_redis = !cache_redis_configured();
	bool		gave_up = false;

	repeat_next = 0;

	/* most writing transactions set nothing: no table of keys to build */
	if (co.nsets > 0)
		select_sets(apply);
	cache_redis_deadline =
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									cache_redis_command_timeout);
	PG_TRY();
	{
		/* invalidations first, then the sets that survive them */
		for (int i = 0; i < co.nops; i++)
		{
			CacheOp    *op = &co.ops[i];
			bool		redis = (op->store->id == CACHE_BACKEND_REDIS);
			int64		removed;

			repeat_next = i;
			if (op->kind == CACHE_OP_SET ||
				(op->kind != CACHE_OP_KEY && repeated_later(i)) ||
				unchanged_since(op) || (redis && skip_redis))
				continue;
			if (!run_invalidation(op->store, op->kind, op->key, op->keylen,
								  &removed) && redis)
			{
				skip_redis = gave_up = true;
				if (!co.redis_queued &&
					!queue_redis_ops(i, InvalidTransactionId))
					ereport(WARNING,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("cache_ext: could not repeat this commit's Redis invalidations, nor queue them"),
							 errdetail("The invalidation queue is full or not loaded; values cached from the old rows may remain until they expire.")));
			}
		}
		for (int i = 0; i < co.nops; i++)
		{
			CacheOp    *op = &co.ops[i];

			if (!apply[i] ||
				(op->store->id == CACHE_BACKEND_REDIS && skip_redis))
				continue;
			set_checked(op->store, op->key, op->keylen, op->val, op->vallen,
						op->ttl, op->lease, co.own_lo, co.own_hi);
		}
	}
	PG_FINALLY();
	{
		cache_redis_deadline = 0;
	}
	PG_END_TRY();
	pfree(apply);

	/*
	 * A cancel during the repeat was for the wait it cut short, which the
	 * queue now finishes; the commit itself has happened, so the client
	 * must not be told "canceling statement" about it.
	 */
	if (gave_up && QueryCancelPending && !ProcDiePending)
		QueryCancelPending = false;
}

/*
 * After commit nothing may raise an ERROR: store failures become warnings
 * (see cache_store_failure) and anything else is reported as a WARNING.
 */
static void
after_commit(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;

	/* an ERROR resets these, but CommitTransaction holds interrupts */
	uint32		save_interrupt_holdoff = InterruptHoldoffCount;
	uint32		save_cancel_holdoff = QueryCancelHoldoffCount;
	uint32		save_crit_section = CritSectionCount;

	co.in_commit = true;
	PG_TRY();
	{
		repeat_after_commit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		InterruptHoldoffCount = save_interrupt_holdoff;
		QueryCancelHoldoffCount = save_cancel_holdoff;
		CritSectionCount = save_crit_section;

		/*
		 * No abort follows to release what the error left held: nothing
		 * holds an LWLock legitimately here.
		 */
		LWLockReleaseAll();
		edata = CopyErrorData();
		FlushErrorState();
		cache_redis_deadline = 0;
		edata->elevel = WARNING;
		ThrowErrorData(edata);

		/* what was not repeated goes to the queue, as any failure's */
		if (cache_redis_configured() && !co.redis_queued)
		{
			PG_TRY();
			{
				if (!queue_redis_ops(repeat_next, InvalidTransactionId))
					ereport(WARNING,
							(errmsg("cache_ext: could not queue this commit's remaining Redis invalidations")));
			}
			PG_CATCH();
			{
				MemoryContextSwitchTo(oldcxt);
				InterruptHoldoffCount = save_interrupt_holdoff;
				QueryCancelHoldoffCount = save_cancel_holdoff;
				CritSectionCount = save_crit_section;
				LWLockReleaseAll();
				FlushErrorState();
			}
			PG_END_TRY();
		}
	}
	PG_END_TRY();
	reset_xact();
}

bool
cache_in_commit(void)
{
	return co.in_commit;
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (co.nops > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that has pending cache_ext work"),
						 errdetail("Its cache invalidations and sets must run at commit, which a prepared transaction cannot promise.")));
			break;
		case XACT_EVENT_PRE_COMMIT:
			if (co.nops > 0)
				pre_commit();
			break;
		case XACT_EVENT_COMMIT:
			/* I2: publishing is cheap; the repeat waits for the locks */
			if (co.nops > 0)
			{
				publish();
				co.repeat_pending = true;
			}
			else
				reset_xact();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			reset_xact();
			break;
		default:
			break;
	}
}

static void
release_callback(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
				 void *arg)
{
	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel)
		return;
	if (isCommit && co.repeat_pending)
	{
		co.repeat_pending = false;
		after_commit();
	}
	/* cache_fetch waiters find the value stored now (fetch.c) */
	cache_fetch_release_locks();
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	int			kept = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	if (co.nops == 0)
		return;
	for (int i = 0; i < co.nops; i++)
	{
		CacheOp    *op = &co.ops[i];

		if (op->subid == mySubid)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
			{
				if (op->kind == CACHE_OP_SET)
				{
					co.nsets--;
					co.set_bytes -= op->vallen + op->keylen;
				}
				else if (op->kind == CACHE_OP_KEY)
					co.nkeyops[op->store->id]--;
				/* a failed Redis invalidation still leaves doubt: keep the flag */
				continue;
			}
			op->subid = parentSubid;
		}
		co.ops[kept++] = *op;
	}
	if (kept != co.nops)
	{
		co.nops = kept;
		reindex_ops();
	}
}

void
cache_coherence_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	RegisterResourceReleaseCallback(release_callback, NULL);
}
