/*-------------------------------------------------------------------------
 *
 * near_cache.h
 *		A coherent copy of recently read Redis values in this server's
 *		shared memory (near_cache.c), kept by cache_ext.redis_near_cache.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NEAR_CACHE_H
#define NEAR_CACHE_H

#include "datatype/timestamp.h"

/*
 * Called by the worker for what the tracking stream reports.  rkey is the
 * full Redis key (cache_ext.key_prefix included), as Redis names it.
 */
extern void cache_near_invalidate_key(const char *rkey, size_t len);
/* a FLUSHDB/FLUSHALL, or the tracking connection was lost */
extern void cache_near_invalidate_all(void);

/* cache_ext.c: settings and shared memory */
extern void cache_near_define_gucs(void);
extern Size cache_near_shmem_size(void);
extern void cache_near_shmem_init(void);

/* ---- store_redis.c: reads ---- */

/*
 * A fill in progress: the placeholder this process put in the near-cache
 * for a key it missed.  The value read from Redis is kept only if that
 * placeholder is still there when the reply arrives (no invalidation of
 * the key came in between) and the tracking epoch has not changed.
 */
typedef struct NearFill
{
	bool		active;			/* a placeholder is ours: send PTTL too */
	uint32		hash;
	uint64		token;
	TimestampTz sent_at;		/* before the request: PTTL counts from it */
} NearFill;

/*
 * A hit: the value, palloc'd.  A miss: NULL, and fill->active when the
 * caller is to read the key with GET and PTTL in one round trip and pass
 * the replies to cache_near_complete().  rkey is the Redis key.
 */
extern text *cache_near_get(const char *rkey, size_t len, NearFill *fill);

/*
 * The end of a fill.  val: the value read, already checked as text (NULL:
 * absent, or not valid text); pttl_ms: PTTL's answer (-1 no expiry, -2
 * absent).  key, keylen: the cache key (without key_prefix), to check the
 * invalidation queue.
 */
extern void cache_near_complete(NearFill *fill, const char *rkey, size_t len,
								const char *key, int keylen,
								const char *val, size_t vallen,
								long long pttl_ms);

/* ---- this server's own writes (store_redis.c, invalq.c) ---- */

/* keys are taken as this session's: cache_ext.key_prefix is added */
extern void cache_near_void_key(const char *key, int len);
extern void cache_near_void_prefix(const char *prefix, int len);
extern void cache_near_void_pattern(const char *pattern, int len);
/* every key under this session's cache_ext.key_prefix */
extern void cache_near_void_namespace(void);

struct CacheQueueItem;
/* what cache_queue_push() just queued */
extern void cache_near_void_queued(int n, const struct CacheQueueItem *items);

#endif							/* NEAR_CACHE_H */
