/*-------------------------------------------------------------------------
 *
 * fetch.h
 *		cache_fetch() with parameters, and the checks of its query.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHE_EXT_FETCH_H
#define CACHE_EXT_FETCH_H

#include "cache.h"

/* cache_fetch with $1, $2, ... bound to values (nulls[i] == 'n': NULL) */
extern Datum cache_fetch_params(const CacheStore *store,
								const char *key, int keylen,
								const char *query, int ttl,
								int nargs, Oid *argtypes,
								Datum *values, const char *nulls);

/*
 * fetch_check.c: refuse anything but one read-only SELECT, check that the
 * caller may read what the query reads (an ERROR if not), and say whether
 * its result may be shared with other roles through the cache.
 */
extern bool fetch_check_query(const char *query, int nargs,
							  const Oid *argtypes);

#endif							/* CACHE_EXT_FETCH_H */
