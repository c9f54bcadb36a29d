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

#include <stdlib.h>

#include "cache.h"
#include "port/pg_bitutils.h"
#include "utils/timestamp.h"

/* at most one WARNING about a failing store per this many ms per session */
#define FAILURE_WARNING_INTERVAL_MS 10000

/* values from this size up make the backend keep heap for them */
#define LARGE_VALUE_BYTES	(32 * 1024)
/*
 * glibc then keeps up to twice this much freed memory in the backend; it
 * ignores freed mappings over DEFAULT_MMAP_THRESHOLD_MAX (512 kB on 32-bit)
 */
#if SIZEOF_SIZE_T == 4
#define HEAP_KEEP_MAX		(256 * 1024)
#else
#define HEAP_KEEP_MAX		(4 * 1024 * 1024)
#endif

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
			/* after commit an ERROR cannot undo anything: warn instead */
			if (cache_in_commit())
			{
				ereport(WARNING,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("cache_ext: %s store failed to %s after commit", store, what),
						 detail ? errdetail_internal("%s", detail) : 0));
				break;
			}
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

/*
 * The DEBUG1 trace an application developer turns on to watch the cache.
 * Checked inline: message_level_is_interesting() is a call on every hit.
 */
#define DEBUG1_WANTED() \
	unlikely(log_min_messages <= DEBUG1 || client_min_messages <= DEBUG1)

static pg_noinline void
log_key_emit(const char *event, const char *key, int keylen)
{
	ereport(DEBUG1,
			(errmsg_internal("cache_ext: %s key \"%.*s\" (%s)",
							 event, keylen, key,
							 cache_current_store()->name)));
}

static inline void
log_key(const char *event, const char *key, int keylen)
{
	if (DEBUG1_WANTED())
		log_key_emit(event, key, keylen);
}

/*
 * Returning a value of 100 kB allocates and frees it, and printtup's copy
 * and send buffer, at the top of glibc's heap.  With glibc's initial
 * thresholds (128 kB) that memory goes back to the kernel when freed and is
 * faulted in again by the next statement, which costs more than the whole
 * hit (the 110 kB page in make bench: page faults led the profile, and the
 * rate doubled without them).  glibc raises its thresholds on its own once
 * a process frees a mapped block: to that block's size for what it maps,
 * twice that for what it keeps (mallopt(3), "dynamic mmap threshold"), as
 * it does in any backend that ever freed a large sort or hash table.  So
 * free one such block: four times the value's size rounded up to a power
 * of two, which leaves room for the value and its copies of one statement
 * under the new trim threshold.  This is for the life of the process, best
 * effort (a heap with a free chunk that large serves the block without a
 * mapping, and nothing changes), and does nothing when GLIBC_TUNABLES or
 * mallopt() have fixed the thresholds, or under another allocator.
 */
static pg_noinline void
keep_heap_for(Size size)
{
	static Size kept = 0;
	Size		want = 4 * pg_nextpower2_size_t(size);
	void	   *volatile block;	/* else the compiler drops the pair */

	if (want <= kept || kept >= HEAP_KEEP_MAX)
		return;
	kept = Min(want, HEAP_KEEP_MAX);
	block = malloc(kept);
	free(block);
}

static inline void
note_value_size(const text *value)
{
	if (value != NULL && VARSIZE(value) >= LARGE_VALUE_BYTES)
		keep_heap_for(VARSIZE(value));
}

/* one statement returns them all: they share the heap it keeps */
static void
note_total_size(int n, text **values)
{
	Size		total = 0;

	for (int i = 0; i < n; i++)
		if (values[i] != NULL)
			total += VARSIZE(values[i]);
	if (total >= LARGE_VALUE_BYTES)
		keep_heap_for(total);
}

text *
cache_get(const char *key, int keylen)
{
	text	   *value = NULL;

	switch (cache_pending_lookup(key, keylen, &value, NULL))
	{
		case CACHE_PENDING_VALUE:
			log_key("hit (pending in this transaction)", key, keylen);
			cache_stat_add(cache_backend, CACHE_STAT_HITS, 1);
			return value;
		case CACHE_PENDING_GONE:
			log_key("miss (invalidated by this transaction)", key, keylen);
			cache_stat_add(cache_backend, CACHE_STAT_MISSES, 1);
			return NULL;
		case CACHE_PENDING_NONE:
			break;
	}
	value = cache_current_store()->get(key, keylen);
	note_value_size(value);
	cache_stat_add(cache_backend, value ? CACHE_STAT_HITS : CACHE_STAT_MISSES, 1);
	log_key(value ? "hit" : "miss", key, keylen);
	if (value == NULL)
		cache_note_miss(key, keylen);
	return value;
}

/*
 * Keys this transaction's own operations decide are answered from them; the
 * rest go to the store in one call.
 */
void
cache_get_many(int nkeys, const char *const *keys, const int *keylens,
			   text **values)
{
	const char **rest_keys = palloc(nkeys * sizeof(char *));
	int		   *rest_lens = palloc(nkeys * sizeof(int));
	int		   *rest_idx = palloc(nkeys * sizeof(int));
	text	  **rest_vals = palloc(nkeys * sizeof(text *));
	int			nrest = 0;
	int64		hits = 0;

	for (int i = 0; i < nkeys; i++)
	{
		values[i] = NULL;
		if (cache_pending_lookup(keys[i], keylens[i], &values[i], NULL) !=
			CACHE_PENDING_NONE)
			continue;
		rest_keys[nrest] = keys[i];
		rest_lens[nrest] = keylens[i];
		rest_idx[nrest++] = i;
	}
	if (nrest > 0)
		cache_current_store()->get_many(nrest, rest_keys, rest_lens, rest_vals);
	for (int j = 0; j < nrest; j++)
	{
		values[rest_idx[j]] = rest_vals[j];
		if (rest_vals[j] == NULL)
			cache_note_miss(rest_keys[j], rest_lens[j]);
	}
	for (int i = 0; i < nkeys; i++)
	{
		hits += (values[i] != NULL);
		log_key(values[i] ? "hit" : "miss", keys[i], keylens[i]);
	}
	note_total_size(nkeys, values);
	cache_stat_add(cache_backend, CACHE_STAT_HITS, hits);
	cache_stat_add(cache_backend, CACHE_STAT_MISSES, nkeys - hits);
	pfree(rest_keys);
	pfree(rest_lens);
	pfree(rest_idx);
	pfree(rest_vals);
}

bool
cache_store_set(const char *key, int keylen, const char *val, Size vallen,
				int ttl)
{
	bool		stored = cache_current_store()->set(key, keylen, val, vallen, ttl);

	if (stored)
		cache_stat_add(cache_backend, CACHE_STAT_SETS, 1);
	log_key(stored ? "set" : "not stored", key, keylen);
	return stored;
}

static bool
set_common(const char *key, int keylen, const char *val, Size vallen, int ttl,
		   bool row_image)
{
	if (vallen > (Size) cache_max_value_size)
	{
		log_key("not stored (value larger than cache_ext.max_value_size)",
				key, keylen);
		/* the caller meant to replace the value: the old one is stale */
		cache_delete(key, keylen);
		return false;
	}
	switch (cache_coherent_set(key, keylen, val, vallen, ttl, row_image))
	{
		case CACHE_SET_STORED:
			return true;
		case CACHE_SET_PENDING:
			log_key("set pending until commit", key, keylen);
			return true;
		case CACHE_SET_REFUSED:
			log_key("refused possibly stale set", key, keylen);
			return false;
	}
	return false;
}

bool
cache_set(const char *key, int keylen, const char *val, Size vallen, int ttl)
{
	return set_common(key, keylen, val, vallen, ttl, false);
}

bool
cache_set_row(const char *key, int keylen, const char *val, Size vallen,
			  int ttl)
{
	return set_common(key, keylen, val, vallen, ttl, true);
}

bool
cache_delete(const char *key, int keylen)
{
	/* a value pending in this transaction is live for it */
	bool		pending = (cache_pending_lookup(key, keylen, NULL, NULL) ==
						   CACHE_PENDING_VALUE);
	bool		removed;

	cache_note_invalidation(CACHE_OP_KEY, key, keylen, false);
	removed = cache_current_store()->del(key, keylen) || pending;
	if (removed)
		cache_stat_add(cache_backend, CACHE_STAT_DELETES, 1);
	log_key(removed ? "deleted" : "delete found no", key, keylen);
	return removed;
}

/* Bulk invalidation: applied now, remembered for the commit-time repeat. */
static int64
invalidate(CacheOpKind kind, const char *arg, int len, bool spares_row_images)
{
	const CacheStore *store = cache_current_store();
	int64		n;

	cache_note_invalidation(kind, arg, len, spares_row_images);
	if (kind == CACHE_OP_PREFIX)
		n = store->invalidate_prefix(arg, len);
	else if (kind == CACHE_OP_PATTERN)
		n = store->invalidate_pattern(arg, len);
	else
		n = store->flush();
	cache_stat_add(cache_backend, CACHE_STAT_INVALIDATIONS, n);
	if (DEBUG1_WANTED())
		ereport(DEBUG1,
				(errmsg_internal("cache_ext: %s \"%.*s\" removed " INT64_FORMAT " keys (%s)",
								 kind == CACHE_OP_PREFIX ? "invalidate prefix" :
								 kind == CACHE_OP_PATTERN ? "invalidate pattern" : "flush",
								 len, arg, n, store->name)));
	return n;
}

int64
cache_invalidate_prefix(const char *prefix, int len)
{
	return invalidate(CACHE_OP_PREFIX, prefix, len, false);
}

int64
cache_invalidate_prefix_after_write(const char *prefix, int len)
{
	return invalidate(CACHE_OP_PREFIX, prefix, len, true);
}

int64
cache_invalidate_pattern(const char *pattern, int len)
{
	return invalidate(CACHE_OP_PATTERN, pattern, len, false);
}

int64
cache_flush(void)
{
	return invalidate(CACHE_OP_ALL, "", 0, false);
}

int32
cache_ttl(const char *key, int keylen, bool *found)
{
	int			ttl;

	switch (cache_pending_lookup(key, keylen, NULL, &ttl))
	{
		case CACHE_PENDING_VALUE:
			/* a pending value has its whole TTL ahead: it starts at commit */
			*found = true;
			return (ttl == 0) ? -1 : ttl;
		case CACHE_PENDING_GONE:
			*found = false;
			return 0;
		case CACHE_PENDING_NONE:
			break;
	}
	return cache_current_store()->ttl(key, keylen, found);
}
