/*-------------------------------------------------------------------------
 *
 * invalq.h
 *		The invalidation queue (invalq.c) and the background worker that
 *		delivers it (redis_worker.c).
 *
 * Redis invalidations that could not be delivered (Redis down or slow, a
 * session in its retry pause, a commit-time repeat cancelled or out of
 * time) are kept here, in shared memory and in a file in the data
 * directory, and the worker delivers them in the order they were queued
 * as soon as Redis answers.  Until an entry is delivered, this server's
 * reads of the keys it covers miss and sets of them are refused
 * (cache_queue_covers).
 *
 * Only with shared_preload_libraries: without it cache_queue_push()
 * returns false and the caller must not lose the invalidation another way
 * (it raises an ERROR before commit).
 *
 *-------------------------------------------------------------------------
 */
#ifndef INVALQ_H
#define INVALQ_H

#include "cache.h"

/* One invalidation to queue; text is the key, prefix or pattern as the
 * caller passed it, without cache_ext.key_prefix (the queue adds the
 * caller's key_prefix and remembers the caller's cache_ext.redis_url). */
typedef struct CacheQueueItem
{
	CacheOpKind kind;			/* CACHE_OP_KEY, _PREFIX, _PATTERN or _ALL */
	const char *text;
	int			len;
	/*
	 * text[0 .. nslen) is a prefix that covers the whole item (its
	 * namespace): a template's text before its first placeholder, a
	 * prefix's own length, a pattern's literal start.  When the queue is
	 * short of room it may widen an item to that prefix, never further.
	 */
	int			nslen;
} CacheQueueItem;

/* Is there a queue (preloaded)? */
extern bool cache_queue_available(void);

/*
 * Append n items, all or nothing, in this order, after everything queued
 * before.  wait_xid: when valid, the worker delivers these items only once
 * that transaction is no longer in progress (items queued just before a
 * commit); InvalidTransactionId delivers as soon as Redis answers.  The
 * items are in the queue file (written and fsync'd) when this returns
 * true.  False: no queue, or no room even after widening.
 */
extern bool cache_queue_push(int n, const CacheQueueItem *items,
							 TransactionId wait_xid);

/*
 * The same for the replay of a WAL record (coherence_wal.c): key_prefix is
 * the writer's, the URL this server's own cache_ext.redis_url.  With !sync
 * the file is written but not fsync'd, and marked dirty: the worker fsyncs
 * it soon after (cache_queue_sync_if_dirty), and cache_queue_sync_file()
 * at once, e.g. at the end of recovery.
 */
extern bool cache_queue_push_replayed(int n, const CacheQueueItem *items,
									  TransactionId wait_xid,
									  const char *key_prefix, bool sync);
extern void cache_queue_sync_file(void);

/*
 * fsyncs the file if an append made at least min_age_ms ago is not fsync'd
 * yet, and returns true; otherwise lowers *wait_ms (if not NULL) to when
 * one will be that old.  Never holds a lock across the fsync.
 */
extern bool cache_queue_sync_if_dirty(int min_age_ms, long *wait_ms);

/* the worker's min_age_ms; replay's own, for a worker busy with Redis */
#define CACHE_QUEUE_SYNC_MS			100
#define CACHE_QUEUE_SYNC_REPLAY_MS	1000

/* Is anything queued?  One atomic read: cheap on every call. */
extern bool cache_queue_nonempty(void);

/*
 * Does a queued item cover this key (without key_prefix; the caller's
 * key_prefix and redis_url apply)?  Fast when the queue is empty.
 */
extern bool cache_queue_covers(const char *key, int keylen);

/* For cache_stats(): items waiting, and items delivered since start. */
extern int64 cache_queue_length(void);
extern int64 cache_queue_delivered(void);

/* cache_ext.c: settings, shared memory and the worker */
extern void cache_queue_define_gucs(void);	/* before cache_define_gucs() */
extern Size cache_queue_shmem_size(void);
extern void cache_queue_shmem_init(void);
extern void cache_worker_register(void);

/* ---- the worker's side (redis_worker.c) ---- */

/* A copy of the oldest entry, palloc'd. */
typedef struct CacheQueueHead
{
	CacheOpKind kind;
	char	   *url;			/* with password: never print it */
	char	   *prefix;			/* cache_ext.key_prefix of the pusher */
	char	   *text;
	int			len;
	TransactionId wait_xid;
	uint64		seq;
} CacheQueueHead;

/* pushes wake this PGPROC's latch; -1 for none */
extern void cache_queue_attach_worker(int procno);
/* false if the queue is empty */
extern bool cache_queue_head(CacheQueueHead *head);
/* remove the head if it is still entry "seq" (counted as delivered) */
extern bool cache_queue_pop(uint64 seq);
/* truncate the file when the queue is empty, rewrite it when it grew */
extern void cache_queue_maintain_file(void);

#endif							/* INVALQ_H */
