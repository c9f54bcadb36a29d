/*-------------------------------------------------------------------------
 *
 * coherence_ring.c
 *		The shared ring of committed invalidations: each committing
 *		transaction publishes its invalidations here with increasing
 *		sequence numbers, and sets are checked against it (leases, I4, and
 *		snapshots, I5, in coherence.c, where the protocol is described).
 *
 * The ring keeps the last RING_SLOTS invalidations of the server; a check
 * that needs an older one answers "covered" (when in doubt, refuse).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "coherence_ring.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/snapmgr.h"

#define RING_SLOTS			4096
#define RING_TEXT			200
/* a commit with more invalidations publishes one "whole namespace" slot */
#define MAX_SLOTS_PER_COMMIT 256

typedef struct RingSlot
{
	uint64		seq;
	TransactionId next_xid;		/* the next XID when it was published (I5) */
	Oid			dbid;
	uint8		store;			/* CacheBackend */
	uint8		kind;			/* CacheOpKind */
	uint16		len;
	uint32		keyhash;		/* CACHE_OP_KEY */
	TransactionId xid;			/* the committing transaction, if it had one */
	bool		replayed;		/* from WAL replay: published before commit */
	char		text[RING_TEXT];
} RingSlot;

/*
 * What the ring forgot, for the snapshot check: the newest XID of the
 * transactions whose slots were overwritten, per hash bucket of their key
 * (KEY slots), per length and hash bucket of their prefix (PREFIX slots, a
 * prefix longer than PREFIX_CLASSES counting as its first PREFIX_CLASSES
 * bytes, which only widens it), and one for the rest (patterns, flushes).
 * A snapshot whose xmin follows all that could cover a key saw all of it.
 */
#define FORGOT_KEY_BUCKETS	4096
#define PREFIX_CLASSES		64
#define PREFIX_BUCKETS		64

typedef struct RingForgotten
{
	TransactionId key[FORGOT_KEY_BUCKETS];
	TransactionId prefix[PREFIX_CLASSES + 1][PREFIX_BUCKETS];
	bool		prefix_class_used[PREFIX_CLASSES + 1];
	TransactionId other;
} RingForgotten;

typedef struct Ring
{
	LWLock		lock;
	pg_atomic_uint64 last_seq;	/* newest published; readable unlocked */
	RingForgotten forgotten;	/* under lock */

	/*
	 * Replayed slots (cache_ring_lease_seq): the oldest sequence number that
	 * may hold one whose transaction is not visible yet, 0 for none
	 * (written under lock, read unlocked); and the newest XID of such slots
	 * overwritten before their transaction was seen to end (under lock).
	 */
	pg_atomic_uint64 replay_pending;
	TransactionId replay_forgot_xid;

	/*
	 * The next XID when WAL replay started on a hot standby, until a
	 * snapshot shows every XID before it ended; InvalidTransactionId for
	 * none (cache_ring_set_replay_start).
	 */
	pg_atomic_uint32 replay_start_xid;
	RingSlot	slots[RING_SLOTS];
} Ring;

static Ring *ring = NULL;

bool
cache_ring_available(void)
{
	return ring != NULL;
}

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
		pg_atomic_init_u64(&ring->replay_pending, 0);
		pg_atomic_init_u32(&ring->replay_start_xid, InvalidTransactionId);
		ring->replay_forgot_xid = InvalidTransactionId;
		memset(ring->slots, 0, sizeof(ring->slots));
		/* InvalidTransactionId is 0: nothing forgotten yet */
		memset(&ring->forgotten, 0, sizeof(ring->forgotten));
	}
	LWLockRegisterTranche(ring->lock.tranche, "cache_ext_ring");
}

uint64
cache_ring_seq(void)
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
			break;
	}
	return false;
}

/*
 * Leases (I4 in coherence.c): did another transaction commit an invalidation covering this key
 * after sequence number "since"?  Slots in [skip_lo, skip_hi] are the
 * caller's own commit, which never refuses its own sets.
 */
bool
cache_ring_covers(CacheBackend store, uint64 since, const char *key, int keylen,
			uint64 skip_lo, uint64 skip_hi)
{
	uint32		keyhash;
	uint64		last;
	bool		covered = false;

	if (ring == NULL || since >= cache_ring_seq())
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
		covered = slot_covers(slot, store, key, keylen, keyhash);
	}
	LWLockRelease(&ring->lock);
	return covered;
}

/*
 * Snapshots (I5 in coherence.c): the snapshot a value being set was computed from, if any: the
 * transaction's in REPEATABLE READ and SERIALIZABLE, else the statement's.
 */
static Snapshot
value_snapshot(void)
{
	if (IsolationUsesXactSnapshot())
		return FirstSnapshotSet ? GetTransactionSnapshot() : NULL;
	return ActiveSnapshotSet() ? GetActiveSnapshot() : NULL;
}

/* newer of two XIDs, the invalid one counting as oldest */
static inline void
keep_newer(TransactionId *kept, TransactionId xid)
{
	if (!TransactionIdIsValid(*kept) || TransactionIdFollows(xid, *kept))
		*kept = xid;
}

static inline bool
not_before(TransactionId kept, TransactionId xmin)
{
	return TransactionIdIsValid(kept) && TransactionIdFollowsOrEquals(kept, xmin);
}

/* A slot is about to be overwritten: remember it in ring->forgotten. */
static void
forget_slot(RingSlot *slot)
{
	RingForgotten *f = &ring->forgotten;
	uint64		pending = pg_atomic_read_u64(&ring->replay_pending);

	if (!TransactionIdIsValid(slot->xid))
		return;					/* not a write: snapshots do not matter */
	if (slot->replayed && pending != 0 && slot->seq >= pending)
		keep_newer(&ring->replay_forgot_xid, slot->xid);
	switch ((CacheOpKind) slot->kind)
	{
		case CACHE_OP_KEY:
			keep_newer(&f->key[slot->keyhash % FORGOT_KEY_BUCKETS], slot->xid);
			break;
		case CACHE_OP_PREFIX:
			{
				int			c = Min(slot->len, PREFIX_CLASSES);

				keep_newer(&f->prefix[c][text_hash(slot->text, c) % PREFIX_BUCKETS],
						   slot->xid);
				f->prefix_class_used[c] = true;
				break;
			}
		default:
			keep_newer(&f->other, slot->xid);
			break;
	}
}

/*
 * Could a forgotten slot that covers this key come from a transaction
 * that a snapshot with this xmin does not see?
 */
static bool
forgotten_covers(const char *key, int keylen, uint32 keyhash,
				 TransactionId xmin)
{
	RingForgotten *f = &ring->forgotten;

	if (not_before(f->other, xmin) ||
		not_before(f->key[keyhash % FORGOT_KEY_BUCKETS], xmin))
		return true;
	for (int c = 0; c <= Min(keylen, PREFIX_CLASSES); c++)
		if (f->prefix_class_used[c] &&
			not_before(f->prefix[c][text_hash(key, c) % PREFIX_BUCKETS], xmin))
			return true;
	return false;
}

/*
 * Does the ring hold a covering invalidation of a transaction that the
 * value's snapshot does not see?  Slots are scanned from the newest back
 * to the first one published when the next XID was not above the
 * snapshot's xmin: that transaction, and every older one, had completed
 * when the snapshot was taken, so the snapshot sees them.  Past the oldest
 * slot kept, what the ring forgot decides (when in doubt, refuse).
 */
bool
cache_ring_snapshot_missed(CacheBackend store, const char *key, int keylen)
{
	Snapshot	snap;
	uint32		keyhash;
	uint64		last;
	uint64		s;
	bool		covered = false;
	TransactionId start_xid;

	if (ring == NULL || (snap = value_snapshot()) == NULL)
		return false;

	/* see cache_ring_set_replay_start() */
	start_xid = pg_atomic_read_u32(&ring->replay_start_xid);
	if (TransactionIdIsValid(start_xid))
	{
		if (TransactionIdPrecedes(snap->xmin, start_xid))
			return true;

		/*
		 * This snapshot sees every XID before it end, but an older one (a
		 * REPEATABLE READ transaction's) may not: keep checking, until
		 * XIDs are so far past it (2^30) that no snapshot is that old and
		 * comparing with it would soon wrap around.
		 */
		if ((uint32) (snap->xmin - start_xid) > ((uint32) 1 << 30))
			pg_atomic_compare_exchange_u32(&ring->replay_start_xid, &start_xid,
										   InvalidTransactionId);
	}
	if (cache_ring_seq() == 0)
		return false;
	keyhash = text_hash(key, Min(keylen, RING_TEXT));
	LWLockAcquire(&ring->lock, LW_SHARED);
	last = pg_atomic_read_u64(&ring->last_seq);
	for (s = last; s > 0 && !covered; s--)
	{
		RingSlot   *slot;

		if (last - s >= RING_SLOTS)
		{
			covered = forgotten_covers(key, keylen, keyhash, snap->xmin);
			break;
		}
		slot = &ring->slots[s % RING_SLOTS];
		if (TransactionIdPrecedesOrEquals(slot->next_xid, snap->xmin))
			break;
		covered = TransactionIdIsValid(slot->xid) &&
			slot_covers(slot, store, key, keylen, keyhash) &&
			XidInMVCCSnapshot(slot->xid, snap);
	}
	LWLockRelease(&ring->lock);
	return covered;
}

/* ---- publishing ---- */

static void
fill_slot(RingSlot *slot, uint64 seq, TransactionId next_xid, TransactionId xid,
		  bool replayed, Oid dbid, CacheOpKind kind, CacheBackend store,
		  const char *text, int len)
{
	/* a pattern too long to keep is widened to the whole namespace */
	if (kind == CACHE_OP_PATTERN && len > RING_TEXT)
		kind = CACHE_OP_ALL;
	if (seq > RING_SLOTS)
		forget_slot(slot);
	slot->seq = seq;
	slot->replayed = replayed;
	slot->next_xid = next_xid;
	slot->xid = xid;
	slot->dbid = dbid;
	slot->store = store;
	slot->kind = kind;
	slot->len = Min(len, RING_TEXT);
	memcpy(slot->text, text, slot->len);
	slot->keyhash = text_hash(text, slot->len);
}

/*
 * A commit with very many invalidations (a large UPDATE under a key
 * template) publishes one "whole namespace" slot per store instead of
 * flooding the ring: that only refuses more sets.  The next XID is read
 * under the ring's lock, so that it grows with the sequence number, as
 * cache_ring_snapshot_missed() relies on.
 */
static void
publish_for(Oid dbid, TransactionId xid, bool replayed, int n,
			const CacheRingItem *items, uint64 *lo, uint64 *hi)
{
	bool		stores[CACHE_NUM_STORES] = {false, false};
	TransactionId next_xid;
	uint64		last;

	*lo = 1;
	*hi = 0;
	if (ring == NULL || n == 0)
		return;
	for (int i = 0; i < n; i++)
		stores[items[i].store] = true;

	LWLockAcquire(&ring->lock, LW_EXCLUSIVE);
	next_xid = ReadNextTransactionId();
	*lo = pg_atomic_read_u64(&ring->last_seq) + 1;
	last = *lo - 1;
	if (n > MAX_SLOTS_PER_COMMIT)
	{
		for (int st = 0; st < CACHE_NUM_STORES; st++)
			if (stores[st])
			{
				last++;
				fill_slot(&ring->slots[last % RING_SLOTS], last, next_xid,
						  xid, replayed, dbid, CACHE_OP_ALL, st, "", 0);
			}
	}
	else
	{
		for (int i = 0; i < n; i++)
		{
			last++;
			fill_slot(&ring->slots[last % RING_SLOTS], last, next_xid,
					  xid, replayed, dbid, items[i].kind, items[i].store,
					  items[i].text, items[i].len);
		}
	}
	if (replayed && TransactionIdIsValid(xid) && last >= *lo &&
		pg_atomic_read_u64(&ring->replay_pending) == 0)
		pg_atomic_write_u64(&ring->replay_pending, *lo);

	/*
	 * replay_pending and replay_forgot_xid (forget_slot) before last_seq:
	 * cache_ring_lease_seq() reads them unlocked in the opposite order.
	 */
	pg_write_barrier();
	pg_atomic_write_u64(&ring->last_seq, last);
	*hi = last;
	LWLockRelease(&ring->lock);
}

void
cache_ring_publish(int n, const CacheRingItem *items, uint64 *lo, uint64 *hi)
{
	publish_for(MyDatabaseId, GetTopTransactionIdIfAny(), false, n, items,
				lo, hi);
}

/*
 * The replay of a WAL record (coherence_wal.c) publishes for the writing
 * transaction and its database.  On a hot standby that XID is
 * known-assigned and the next XID is past it before the record is redone,
 * so the slot passes the snapshot check of cache_ring_snapshot_missed()
 * exactly as a primary's does.
 */
void
cache_ring_publish_replayed(Oid dbid, TransactionId xid, int n,
							const CacheRingItem *items)
{
	uint64		lo;
	uint64		hi;

	publish_for(dbid, xid, true, n, items, &lo, &hi);
}

/*
 * Replay starts (rm_startup, coherence_wal.c) on a server that will accept
 * reads during recovery.  The ring is empty then, and it will never hold
 * the invalidations of a transaction whose record came before the replay's
 * start (the redo point of the last restartpoint) but whose commit record
 * comes after: a snapshot taken before that commit is replayed does not
 * see the write, and nothing would refuse a value it computes.  Every such
 * transaction has an XID before the next XID at the start (the redo
 * point's checkpoint recorded it after its XID was assigned), so sets from
 * snapshots whose xmin precedes that XID, which may not see one of them
 * end, are refused (when in doubt, refuse); snapshots taken once every
 * transaction before it has ended are not.  Checking a snapshot costs one
 * atomic read and a comparison.
 */
void
cache_ring_set_replay_start(TransactionId next_xid)
{
	if (ring != NULL)
		pg_atomic_write_u32(&ring->replay_start_xid, next_xid);
}

/*
 * The lease a miss takes (I4 in coherence.c).  On a primary, the newest
 * sequence number: a slot is published once its transaction is visible.
 * A replayed slot is published before its commit record (coherence_wal.c),
 * so a session that misses between the two would take a lease after the
 * slot and read rows that do not show the write yet: its set must still be
 * checked against that slot.  So the lease stops before the oldest
 * replayed slot whose transaction is still in progress here (known-assigned
 * on a hot standby); when such slots were overwritten before their
 * transaction was seen to end, it stops before the whole ring (when in
 * doubt, refuse) until the snapshot shows them ended.
 */
uint64
cache_ring_lease_seq(void)
{
	uint64		last;
	uint64		lo;
	uint64		lease;

	if (ring == NULL)
		return 0;

	/*
	 * The fast path, without the lock: last_seq first, then replay_pending
	 * and replay_forgot_xid.  publish_for() writes those two before
	 * last_seq, with a write barrier between, so if this reads a last_seq
	 * that includes a replayed slot, the read barrier guarantees it also
	 * reads the replay_pending (or replay_forgot_xid) written with it, or a
	 * later value: a later 0 is written only under the lock after every
	 * replayed slot up to a last_seq at least as new was seen to be no
	 * longer in progress.  Read the other way round (replay_pending, then
	 * last_seq), a publish between the two reads would let a miss take a
	 * lease after a replayed slot whose transaction is still in progress.
	 */
	last = pg_atomic_read_u64(&ring->last_seq);
	pg_read_barrier();
	if (pg_atomic_read_u64(&ring->replay_pending) == 0 &&
		!TransactionIdIsValid(ring->replay_forgot_xid))
		return last;

	LWLockAcquire(&ring->lock, LW_EXCLUSIVE);
	last = pg_atomic_read_u64(&ring->last_seq);
	lo = pg_atomic_read_u64(&ring->replay_pending);
	if (lo != 0)
	{
		/* what was overwritten is in replay_forgot_xid (forget_slot) */
		if (last - lo >= RING_SLOTS)
			lo = last - RING_SLOTS + 1;
		for (; lo <= last; lo++)
		{
			RingSlot   *slot = &ring->slots[lo % RING_SLOTS];

			if (slot->replayed && TransactionIdIsValid(slot->xid) &&
				TransactionIdIsInProgress(slot->xid))
				break;
		}
		pg_atomic_write_u64(&ring->replay_pending, lo > last ? 0 : lo);
	}
	lease = (lo != 0 && lo <= last) ? lo - 1 : last;
	if (TransactionIdIsValid(ring->replay_forgot_xid))
	{
		/* every XID before a fresh snapshot's xmin has ended */
		Snapshot	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : NULL;

		if (snap != NULL &&
			TransactionIdPrecedes(ring->replay_forgot_xid, snap->xmin))
			ring->replay_forgot_xid = InvalidTransactionId;
		else
			lease = (last > RING_SLOTS) ? last - RING_SLOTS - 1 : 0;
	}
	LWLockRelease(&ring->lock);
	return lease;
}
