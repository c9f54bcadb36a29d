/*-------------------------------------------------------------------------
 *
 * cache.c
 *		The front layer between the SQL functions and the stores: picks the
 *		store, counts, logs hits and misses at DEBUG1, and applies the
 *		error policy for store failures.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cache.h"
#include "utils/timestamp.h"

/* at most one WARNING about a failing store per this many ms per session */
#define FAILURE_WARNING_INTERVAL_MS 10000

const CacheStore *
cache_current_store(void)
{
	return (cache_backend == CACHE_BACKEND_REDIS) ?
		&cache_redis_store : &cache_shmem_store;
}

void
cache_store_failure(const char *store, const char *what, const char *detail)
{
	static TimestampTz last_warning = 0;
	TimestampTz now;

	cache_stat_add(cache_backend, CACHE_STAT_ERRORS, 1);
	switch (cache_on_error)
	{
		case CACHE_ON_ERROR_ERROR:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("cache_ext: %s store failed to %s", store, what),
					 detail ? errdetail_internal("%s", detail) : 0));
			break;
		case CACHE_ON_ERROR_WARN:
			now = GetCurrentTimestamp();
			if (last_warning != 0 &&
				!TimestampDifferenceExceeds(last_warning, now,
											FAILURE_WARNING_INTERVAL_MS))
				break;
			last_warning = now;
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("cache_ext: %s store failed to %s", store, what),
					 detail ? errdetail_internal("%s", detail) : 0,
					 errhint("Reads miss and writes are not stored until it works again; further failures are not reported for %d seconds.",
							 FAILURE_WARNING_INTERVAL_MS / 1000)));
			break;
		case CACHE_ON_ERROR_IGNORE:
			break;
	}
}

/* The DEBUG1 trace an application developer turns on to watch the cache. */
static void
log_key(const char *event, const char *key, int keylen)
{
	if (message_level_is_interesting(DEBUG1))
		ereport(DEBUG1,
				(errmsg_internal("cache_ext: %s key \"%.*s\" (%s)",
								 event, keylen, key,
								 cache_current_store()->name)));
}

static void
log_bulk(const char *event, const char *arg, int arglen, int64 n)
{
	if (message_level_is_interesting(DEBUG1))
		ereport(DEBUG1,
				(errmsg_internal("cache_ext: %s \"%.*s\" removed " INT64_FORMAT " keys (%s)",
								 event, arglen, arg, n,
								 cache_current_store()->name)));
}

text *
cache_get(const char *key, int keylen)
{
	text	   *value = cache_current_store()->get(key, keylen);

	cache_stat_add(cache_backend, value ? CACHE_STAT_HITS : CACHE_STAT_MISSES, 1);
	log_key(value ? "hit" : "miss", key, keylen);
	return value;
}

void
cache_get_many(int nkeys, const char *const *keys, const int *keylens,
			   text **values)
{
	int64		hits = 0;

	cache_current_store()->get_many(nkeys, keys, keylens, values);
	for (int i = 0; i < nkeys; i++)
	{
		hits += (values[i] != NULL);
		log_key(values[i] ? "hit" : "miss", keys[i], keylens[i]);
	}
	cache_stat_add(cache_backend, CACHE_STAT_HITS, hits);
	cache_stat_add(cache_backend, CACHE_STAT_MISSES, nkeys - hits);
}

bool
cache_set(const char *key, int keylen, const char *val, Size vallen, int ttl)
{
	bool		stored;

	if (vallen > (Size) cache_max_value_size)
	{
		log_key("not stored (value larger than cache_ext.max_value_size)",
				key, keylen);
		return false;
	}
	stored = cache_current_store()->set(key, keylen, val, vallen, ttl);
	if (stored)
		cache_stat_add(cache_backend, CACHE_STAT_SETS, 1);
	log_key(stored ? "set" : "not stored", key, keylen);
	return stored;
}

bool
cache_delete(const char *key, int keylen)
{
	bool		removed = cache_current_store()->del(key, keylen);

	if (removed)
		cache_stat_add(cache_backend, CACHE_STAT_DELETES, 1);
	log_key(removed ? "deleted" : "delete found no", key, keylen);
	return removed;
}

int64
cache_invalidate_prefix(const char *prefix, int len)
{
	int64		n = cache_current_store()->invalidate_prefix(prefix, len);

	cache_stat_add(cache_backend, CACHE_STAT_INVALIDATIONS, n);
	log_bulk("invalidate prefix", prefix, len, n);
	return n;
}

int64
cache_invalidate_pattern(const char *pattern, int len)
{
	int64		n = cache_current_store()->invalidate_pattern(pattern, len);

	cache_stat_add(cache_backend, CACHE_STAT_INVALIDATIONS, n);
	log_bulk("invalidate pattern", pattern, len, n);
	return n;
}

int64
cache_flush(void)
{
	int64		n = cache_current_store()->flush();

	cache_stat_add(cache_backend, CACHE_STAT_INVALIDATIONS, n);
	log_bulk("flush", "", 0, n);
	return n;
}

int32
cache_ttl(const char *key, int keylen, bool *found)
{
	return cache_current_store()->ttl(key, keylen, found);
}
