/*-------------------------------------------------------------------------
 *
 * redis_tracking.h
 *		Redis server-assisted client tracking, held by the cache_ext worker
 *		(redis_tracking.c), and the key directory it feeds.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REDIS_TRACKING_H
#define REDIS_TRACKING_H

#include "datatype/timestamp.h"

/*
 * The tracking stream's epoch: 0 while the worker holds no live tracking
 * connection to the server-wide cache_ext.redis_url; otherwise a number
 * that changes on every (re)connection.  A near-cache fill that read 0, or
 * that sees a different epoch when it completes, must not be kept.
 */
extern uint64 cache_tracking_epoch(void);

/*
 * The epoch, or 0 when the worker has not heard from Redis on the tracking
 * connection lately (a silently dead connection, a stuck worker): what
 * near-cache hits and the key directory go by.
 */
extern uint64 cache_tracking_live_epoch(void);

/* notifications the worker has consumed so far (a sequence number) */
extern uint64 cache_tracking_consumed(void);
extern void cache_tracking_wake_worker(void);

/* the barrier (see redis_tracking.c), for store_redis.c */
extern char *cache_tracking_barrier_key(size_t *len, uint64 *seq);
extern bool cache_tracking_barrier_wait(uint64 seq, uint64 epoch,
										TimestampTz deadline);

/* redis_worker.c */
extern void cache_tracking_worker_poll(long *timeout);
extern void cache_tracking_worker_wait(long timeout);
/* between the steps of long work in the worker (store_redis.c) */
extern void cache_tracking_worker_service(void);
extern void cache_tracking_worker_exit(void);

/* cache_ext.c: settings and shared memory */
extern void cache_tracking_define_gucs(void);
extern Size cache_tracking_shmem_size(void);
extern void cache_tracking_shmem_init(void);

#endif							/* REDIS_TRACKING_H */
