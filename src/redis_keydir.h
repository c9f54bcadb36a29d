/*-------------------------------------------------------------------------
 *
 * redis_keydir.h
 *		The directory of the Redis keys under the namespaces cache_ext
 *		invalidates (redis_keydir.c), fed by the tracking stream.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REDIS_KEYDIR_H
#define REDIS_KEYDIR_H

/* settings and shared memory, through redis_tracking.c */
extern void cache_keydir_define_gucs(void);
extern Size cache_keydir_shmem_size(void);
extern void cache_keydir_shmem_init(void);

/* the worker (redis_tracking.c) */
extern void cache_keydir_reset(const char *url, const char *prefix);
extern void cache_keydir_flushed(void);
extern void cache_keydir_note_keys(int n, const char *const *keys,
								   const size_t *lens, uint64 seq);
extern bool cache_keydir_fill_step(void);

/* sessions (store_redis.c) */
typedef struct CacheKeyList
{
	int			nkeys;
	const char **keys;
	size_t	   *lens;
	char	   *data;
} CacheKeyList;

extern uint64 cache_keydir_covers(const char *p, int len);
extern bool cache_keydir_collect(const char *p, int len, const char *pat,
								 int patlen, int skip, uint64 epoch,
								 CacheKeyList *out);
extern void cache_keydir_forget(int n, const char *const *keys,
								const size_t *lens, uint64 consumed);

#endif							/* REDIS_KEYDIR_H */
