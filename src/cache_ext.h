/*-------------------------------------------------------------------------
 *
 * cache_ext.h
 *		Shared declarations of cache_ext: settings, the store interface,
 *		statistics and the error policy for store failures.
 *
 * The SQL-callable layer (functions.c) checks arguments and calls the
 * front layer (cache.c), which logs, counts and applies transactional
 * rules before reaching one CacheStore implementation (store_shmem.c,
 * store_redis.c) chosen by cache_ext.backend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHE_EXT_H
#define CACHE_EXT_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/guc.h"

#define CACHE_MAX_KEY_LEN	1024

/* ---- settings (guc.c) ---- */

typedef enum CacheBackend
{
	CACHE_BACKEND_SHMEM,
	CACHE_BACKEND_REDIS
} CacheBackend;

typedef enum CacheOnError
{
	CACHE_ON_ERROR_WARN,
	CACHE_ON_ERROR_IGNORE,
	CACHE_ON_ERROR_ERROR
} CacheOnError;

extern int	cache_backend;
extern int	cache_default_ttl;
extern int	cache_shmem_size_mb;
extern int	cache_max_value_size;	/* bytes */
extern char *cache_redis_url;
extern int	cache_redis_connect_timeout;	/* ms */
extern int	cache_redis_command_timeout;	/* ms */
extern char *cache_key_prefix;
extern int	cache_on_error;

extern bool cache_preloaded;	/* loaded via shared_preload_libraries */

extern void cache_define_gucs(void);

/* cache_ext.redis_url hooks (store_redis.c) */
extern bool cache_redis_check_url(char **newval, void **extra,
								  GucSource source);
extern void cache_redis_assign_url(const char *newval, void *extra);
extern const char *cache_redis_show_url(void);
/* the setting with its password, for the worker; never shown */
extern const char *cache_redis_url_raw(void);
/* when not 0, no Redis call of this process waits past it */
extern TimestampTz cache_redis_deadline;

/* ---- the store interface ---- */

typedef struct CacheStoreSize
{
	int64		entries;
	int64		bytes_used;
	int64		bytes_max;
} CacheStoreSize;

/*
 * One implementation per place values live.  Keys arrive already checked
 * (1..CACHE_MAX_KEY_LEN bytes); they are not NUL-terminated.  "ttl" is in
 * seconds, 0 meaning "never expires".
 *
 * A store that fails (Redis down, timeout) calls cache_store_failure(),
 * which raises an ERROR or warns according to cache_ext.on_error, and then
 * answers as a miss / not stored / nothing removed.
 */
typedef struct CacheStore
{
	CacheBackend id;			/* also the index of its statistics */
	const char *name;

	/* palloc'd copy of the value in CurrentMemoryContext, or NULL */
	text	   *(*get) (const char *key, int keylen);

	/* values[i] = palloc'd value of keys[i], or NULL; one round trip */
	void		(*get_many) (int nkeys, const char *const *keys,
							 const int *keylens, text **values);

	bool		(*set) (const char *key, int keylen,
						const char *val, Size vallen, int ttl);

	/* true if a live key was removed */
	bool		(*del) (const char *key, int keylen);

	/* number of keys removed */
	int64		(*invalidate_prefix) (const char *prefix, int len);
	int64		(*invalidate_pattern) (const char *pattern, int len);

	/* seconds left, -1 for no expiry; *found = false if absent */
	int32		(*ttl) (const char *key, int keylen, bool *found);

	/* remove every key of this database's namespace */
	int64		(*flush) (void);

	void		(*size) (CacheStoreSize *out);

	/*
	 * Optional: a number that changes whenever an entry is added.  When it
	 * has not changed since an invalidation, the commit-time repeat of that
	 * invalidation has nothing to remove and is skipped.
	 */
	uint64		(*generation) (void);
} CacheStore;

extern const CacheStore cache_shmem_store;
extern const CacheStore cache_redis_store;

#define CACHE_NUM_STORES 2

/* the store this session's explicit calls use (cache_ext.backend) */
extern const CacheStore *cache_current_store(void);

/* the store with this id */
extern const CacheStore *cache_store_by_id(CacheBackend id);

/*
 * The stores a write invalidates, whatever the session's backend: the
 * shared-memory store when preloaded, Redis when cache_ext.redis_url is
 * set.  Returns how many, filling stores[] (CACHE_NUM_STORES entries).
 */
extern int	cache_written_stores(const CacheStore **stores);

/* Is a Redis server configured (cache_ext.redis_url not empty)? */
extern bool cache_redis_configured(void);

/*
 * Raise/warn/ignore a store failure as cache_ext.on_error says.  Every
 * failure also increments cache_store_failures, so that a caller can tell
 * whether a call it made failed (compare before and after).
 */
extern void cache_store_failure(CacheBackend store, const char *what,
								const char *detail);

/*
 * The same for a call refused without asking the store, because it failed
 * a moment ago (Redis's retry pause): "detail" says so.  In "warn" mode it
 * is not reported while the failure it repeats was reported recently.
 */
extern void cache_store_failure_again(CacheBackend store, const char *what,
									  const char *detail);
extern uint64 cache_store_failures;

/* ---- glob patterns with Redis MATCH semantics (glob.c) ---- */

extern bool cache_glob_valid(const char *pat, int patlen);
extern bool cache_glob_match(const char *pat, int patlen,
							 const char *str, int strlen);

/* ---- statistics (stats.c) ---- */

typedef enum CacheCounter
{
	CACHE_STAT_HITS,
	CACHE_STAT_MISSES,
	CACHE_STAT_SETS,
	CACHE_STAT_DELETES,
	CACHE_STAT_INVALIDATIONS,
	CACHE_STAT_EVICTIONS,
	CACHE_STAT_EXPIRATIONS,
	CACHE_STAT_ERRORS,
	/* the ones above are cache_stats()'s, in its order; the view adds: */
	CACHE_STAT_SETS_REFUSED,	/* refused by the coherence rules: possibly
								 * stale, or too many pending */
	CACHE_STAT_SETS_TOO_LARGE,	/* over max_value_size, or what the store
								 * can hold */
	CACHE_STAT_INV_FAILED,		/* Redis invalidations not delivered at once */
	CACHE_STAT_QUEUE_PUSHED,	/* Redis invalidations handed to the queue */
	CACHE_NUM_COUNTERS
} CacheCounter;

#define CACHE_NUM_CONTRACT_COUNTERS (CACHE_STAT_ERRORS + 1)

/* Counters are kept per store, so that cache_stats() describes one. */
extern void cache_stat_add(CacheBackend store, CacheCounter c, int64 n);
extern void cache_stat_read(CacheBackend store, int64 *values);
extern void cache_stat_reset(void);
extern TimestampTz cache_stat_reset_time(void);
extern Size cache_stats_shmem_size(void);
extern void cache_stats_shmem_init(void);

/*
 * The key of this backend's cache_fetch() while it waits for or holds the
 * key's lock (the cache_ext_fetch_locks view); hash is the lock's.
 */
extern void cache_fetch_key_note(CacheBackend store, uint64 hash,
								 const char *key, int keylen);
extern void cache_fetch_key_clear(void);

/* ---- shared memory (store_shmem.c) ---- */

extern Size cache_shmem_size(void);
extern void cache_shmem_request(void);
extern void cache_shmem_startup(void);
extern void cache_shmem_forget_database(Oid dbid);

#endif							/* CACHE_EXT_H */
