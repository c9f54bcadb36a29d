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

#endif							/* NEAR_CACHE_H */
