/*-------------------------------------------------------------------------
 *
 * coherence_ring.h
 *		The shared ring of committed invalidations (coherence_ring.c), on
 *		which leases and snapshot checks rest; the protocol that uses it
 *		is described once, at the top of coherence.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COHERENCE_RING_H
#define COHERENCE_RING_H

#include "cache.h"
#include "utils/snapshot.h"

/* one invalidation of a committing transaction */
typedef struct CacheRingItem
{
	CacheBackend store;
	CacheOpKind kind;
	const char *text;
	int			len;
} CacheRingItem;

/* is there a ring (preloaded)? */
extern bool cache_ring_available(void);

/* the newest sequence number published; 0 without a ring */
extern uint64 cache_ring_seq(void);

/*
 * Publish a committing transaction's invalidations (after its commit is
 * visible); *lo..*hi are their sequence numbers (lo > hi: none).
 */
extern void cache_ring_publish(int n, const CacheRingItem *items,
							   uint64 *lo, uint64 *hi);

/*
 * Publish the invalidations of a replayed WAL record (coherence_wal.c):
 * for the writing transaction "xid" (may be invalid) in database "dbid".
 */
extern void cache_ring_publish_replayed(Oid dbid, TransactionId xid, int n,
										const CacheRingItem *items);

/*
 * Replay starts, with this next XID, on a server that accepts reads during
 * recovery: until every XID before it has ended, sets from snapshots that
 * may not see one of them are refused (see coherence_ring.c).
 */
extern void cache_ring_set_replay_start(TransactionId next_xid);

/*
 * The sequence number a miss remembers as its lease: the newest one, or on
 * a standby one before the replayed invalidations whose transactions are
 * not visible yet.
 */
extern uint64 cache_ring_lease_seq(void);

/*
 * Did another transaction commit an invalidation covering this key after
 * sequence number "since"?  skip_lo..skip_hi: the caller's own commit.
 * True also when the ring has forgotten that far back.
 */
extern bool cache_ring_covers(CacheBackend store, uint64 since,
							  const char *key, int keylen,
							  uint64 skip_lo, uint64 skip_hi);

/*
 * Does the ring hold a covering invalidation of a transaction that the
 * snapshot the value was computed from does not see (or may it have
 * forgotten one)?
 */
extern bool cache_ring_snapshot_missed(CacheBackend store, const char *key,
									   int keylen);

#endif							/* COHERENCE_RING_H */
