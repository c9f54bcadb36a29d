/*-------------------------------------------------------------------------
 *
 * cache.h
 *		The front layer's operations, called by the SQL functions with
 *		arguments already checked.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHE_H
#define CACHE_H

#include "cache_ext.h"

extern text *cache_get(const char *key, int keylen);
extern void cache_get_many(int nkeys, const char *const *keys,
						   const int *keylens, text **values);
extern bool cache_set(const char *key, int keylen,
					  const char *val, Size vallen, int ttl);
/* a row's image by write-through (see deciding_op() in coherence.c) */
extern bool cache_set_row(const char *key, int keylen,
						  const char *val, Size vallen, int ttl);
extern bool cache_delete(const char *key, int keylen);
extern int64 cache_invalidate_prefix(const char *prefix, int len);
/* by the statement trigger of a write: spares write-through row images */
extern int64 cache_invalidate_prefix_after_write(const char *prefix, int len);
extern int64 cache_invalidate_pattern(const char *pattern, int len);
extern int64 cache_flush(void);
extern int32 cache_ttl(const char *key, int keylen, bool *found);

/* cache-aside in one call (fetch.c); returns a jsonb Datum */
extern Datum cache_fetch(const char *key, int keylen, const char *query,
						 int ttl);

/* store now, counting and logging; the coherence layer's way in */
extern bool cache_store_set(const char *key, int keylen,
							const char *val, Size vallen, int ttl);

/* ---- coherence.c ---- */

typedef enum CacheOpKind
{
	CACHE_OP_SET,
	CACHE_OP_KEY,
	CACHE_OP_PREFIX,
	CACHE_OP_PATTERN,
	CACHE_OP_ALL,
	CACHE_OP_SKIP				/* commit-time repeat found unnecessary */
} CacheOpKind;

typedef enum CacheSetResult
{
	CACHE_SET_STORED,
	CACHE_SET_PENDING,			/* applied at commit */
	CACHE_SET_REFUSED			/* possibly stale */
} CacheSetResult;

extern void cache_coherence_init(void);
extern Size cache_coherence_shmem_size(void);
extern void cache_coherence_shmem_init(void);
typedef enum CachePending
{
	CACHE_PENDING_NONE,			/* the store decides */
	CACHE_PENDING_VALUE,		/* a value set by this transaction */
	CACHE_PENDING_GONE			/* invalidated by this writing transaction */
} CachePending;

extern CachePending cache_pending_lookup(const char *key, int keylen,
										 text **value, int *ttl);
extern void cache_note_miss(const char *key, int keylen);
extern void cache_note_invalidation(CacheOpKind kind, const char *arg, int len,
									bool spares_row_images);
extern CacheSetResult cache_coherent_set(const char *key, int keylen,
										 const char *val, Size vallen, int ttl,
										 bool row_image);
extern bool cache_in_commit(void);

#endif							/* CACHE_H */
