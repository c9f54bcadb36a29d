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
extern bool cache_delete(const char *key, int keylen);
extern int64 cache_invalidate_prefix(const char *prefix, int len);
extern int64 cache_invalidate_pattern(const char *pattern, int len);
extern int64 cache_flush(void);
extern int32 cache_ttl(const char *key, int keylen, bool *found);

#endif							/* CACHE_H */
