/*-------------------------------------------------------------------------
 *
 * cache.c
 *		The front layer between the SQL functions (and triggers) and the
 *		stores: counts, logs hits and misses at DEBUG1, applies the error
 *		policy for store failures, and goes through the coherence rules
 *		(coherence.c).  The store is always an argument: the SQL functions
 *		pass the session's, triggers every store a write invalidates.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "cache.h"
#include "invalq.h"
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

const CacheStore *
cache_store_by_id(CacheBackend id)
{
	return (id == CACHE_BACKEND_REDIS) ? &cache_redis_store : &cache_shmem_store;
}

int
cache_written_stores(const CacheStore **stores)
{
	int			n = 0;

	if (cache_preloaded)
		stores[n++] = &cache_shmem_store;
	if (cache_redis_configured())
		stores[n++] = &cache_redis_store;
	return n;
}

uint64		cache_store_failures = 0;

/*
 * "warn" mode warns once per failure: a failure like the last one warned
 * about (same store, same detail) is not reported again for
 * FAILURE_WARNING_INTERVAL_MS, nor is a call refused without asking the
 * store (cache_store_failure_again), which only repeats one; a different
 * failure is reported at once.
 */
static TimestampTz last_warning = 0;
static CacheBackend last_warning_store;
static char last_warning_detail[256];

static void
store_failure(CacheBackend id, const char *what, const char *detail,
			  bool again)
{
	const char *store = cache_store_by_id(id)->name;
	TimestampTz now;

	cache_store_failures++;
	cache_stat_add(id, CACHE_STAT_ERRORS, 1);
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
											FAILURE_WARNING_INTERVAL_MS) &&
				(again ||
				 (id == last_warning_store &&
				  strncmp(detail ? detail : "", last_warning_detail,
						  sizeof(last_warning_detail) - 1) == 0)))
				break;
			last_warning = now;
			last_warning_store = id;
			strlcpy(last_warning_detail, detail ? detail : "",
					sizeof(last_warning_detail));
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("cache_ext: %s store failed to %s", store, what),
					 detail ? errdetail_internal("%s", detail) : 0,
					 errhint("Reads miss and writes are not stored until it works again; the same failure is not reported again for %d seconds.",
							 FAILURE_WARNING_INTERVAL_MS / 1000)));
			break;
		case CACHE_ON_ERROR_IGNORE:
			break;
	}
}

void
cache_store_failure(CacheBackend id, const char *what, const char *detail)
{
	store_failure(id, what, detail, false);
}

void
cache_store_failure_again(CacheBackend id, const char *what, const char *detail)
{
	store_failure(id, what, detail, true);
}

/*
 * The DEBUG1 trace an application developer turns on to watch the cache.
 * Checked inline: message_level_is_interesting() is a call on every hit.
 */
#define DEBUG1_WANTED() \
	unlikely(log_min_messages <= DEBUG1 || client_min_messages <= DEBUG1)

static pg_noinline void
log_key_emit(const CacheStore *store, const char *event, const char *key,
			 int keylen)
{
	ereport(DEBUG1,
			(errmsg_internal("cache_ext: %s key \"%.*s\" (%s)",
							 event, keylen, key, store->name)));
}

static inline void
log_key(const CacheStore *store, const char *event, const char *key,
		int keylen)
{
	if (DEBUG1_WANTED())
		log_key_emit(store, event, key, keylen);
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


/*
 * A key that a queued Redis invalidation covers reads as a miss until the
 * worker has delivered it (coherence.c, I3).
 */
static inline bool
queued_miss(const CacheStore *store, const char *key, int keylen)
{
	return store->id == CACHE_BACKEND_REDIS && cache_queue_nonempty() &&
		cache_queue_covers(key, keylen);
}

text *
cache_get(const CacheStore *store, const char *key, int keylen)
{
	text	   *value = NULL;

	switch (cache_pending_lookup(store, key, keylen, &value, NULL))
	{
		case CACHE_PENDING_VALUE:
			log_key(store, "hit (pending in this transaction)", key, keylen);
			cache_stat_add(store->id, CACHE_STAT_HITS, 1);
			return value;
		case CACHE_PENDING_GONE:
			log_key(store, "miss (invalidated by this transaction)", key, keylen);
			cache_stat_add(store->id, CACHE_STAT_MISSES, 1);
			return NULL;
		case CACHE_PENDING_NONE:
			break;
	}
	if (queued_miss(store, key, keylen))
		log_key(store, "miss (invalidation queued)", key, keylen);
	else
		value = store->get(key, keylen);
	note_value_size(value);
	cache_stat_add(store->id, value ? CACHE_STAT_HITS : CACHE_STAT_MISSES, 1);
	log_key(store, value ? "hit" : "miss", key, keylen);
	if (value == NULL)
		cache_note_miss(store, key, keylen);
	return value;
}

/*
 * Keys this transaction's own operations decide are answered from them,
 * and keys a queued invalidation covers miss; the rest go to the store in
 * one call.
 */
void
cache_get_many(const CacheStore *store, int nkeys, const char *const *keys,
			   const int *keylens, text **values)
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
		if (cache_pending_lookup(store, keys[i], keylens[i], &values[i], NULL) !=
			CACHE_PENDING_NONE)
			continue;
		if (queued_miss(store, keys[i], keylens[i]))
		{
			cache_note_miss(store, keys[i], keylens[i]);
			continue;
		}
		rest_keys[nrest] = keys[i];
		rest_lens[nrest] = keylens[i];
		rest_idx[nrest++] = i;
	}
	if (nrest > 0)
		store->get_many(nrest, rest_keys, rest_lens, rest_vals);
	for (int j = 0; j < nrest; j++)
	{
		values[rest_idx[j]] = rest_vals[j];
		if (rest_vals[j] == NULL)
			cache_note_miss(store, rest_keys[j], rest_lens[j]);
	}
	for (int i = 0; i < nkeys; i++)
	{
		hits += (values[i] != NULL);
		log_key(store, values[i] ? "hit" : "miss", keys[i], keylens[i]);
	}
	note_total_size(nkeys, values);
	cache_stat_add(store->id, CACHE_STAT_HITS, hits);
	cache_stat_add(store->id, CACHE_STAT_MISSES, nkeys - hits);
	pfree(rest_keys);
	pfree(rest_lens);
	pfree(rest_idx);
	pfree(rest_vals);
}

bool
cache_store_set(const CacheStore *store, const char *key, int keylen,
				const char *val, Size vallen, int ttl)
{
	bool		stored = store->set(key, keylen, val, vallen, ttl);

	if (stored)
		cache_stat_add(store->id, CACHE_STAT_SETS, 1);
	log_key(store, stored ? "set" : "not stored", key, keylen);
	return stored;
}

/*
 * A set through the coherence rules.  A value that is not kept (too large,
 * or past the transaction's bound on pending sets) leaves no older value
 * behind: the caller meant to replace it, so the old one is stale.  nslen:
 * the key's namespace (see cache_written_key).
 */
static bool
set_common(const CacheStore *store, const char *key, int keylen, int nslen,
		   const char *val, Size vallen, int ttl, bool row_image)
{
	if (vallen > (Size) cache_max_value_size)
	{
		log_key(store, "not stored (value larger than cache_ext.max_value_size)",
				key, keylen);
		cache_stat_add(store->id, CACHE_STAT_SETS_TOO_LARGE, 1);
		cache_coherent_invalidate(store, CACHE_OP_KEY, key, keylen, nslen, 0);
		return false;
	}
	switch (cache_coherent_set(store, key, keylen, val, vallen, ttl, row_image))
	{
		case CACHE_SET_STORED:
			return true;
		case CACHE_SET_PENDING:
			log_key(store, "set pending until commit", key, keylen);
			return true;
		case CACHE_SET_REFUSED:
			log_key(store, "refused possibly stale set", key, keylen);
			cache_stat_add(store->id, CACHE_STAT_SETS_REFUSED, 1);
			return false;
		case CACHE_SET_TOO_MANY:
			log_key(store, "not stored (too many pending sets in this transaction)",
					key, keylen);
			cache_stat_add(store->id, CACHE_STAT_SETS_REFUSED, 1);
			/* a write's: merged once widened to its namespace */
			cache_coherent_invalidate(store, CACHE_OP_KEY, key, keylen, nslen,
									  row_image ? CACHE_INV_BY_WRITE : 0);
			return false;
	}
	return false;
}

bool
cache_set(const CacheStore *store, const char *key, int keylen,
		  const char *val, Size vallen, int ttl)
{
	return set_common(store, key, keylen, keylen, val, vallen, ttl, false);
}

/* delete a key; true if a live key (or a pending value) was removed */
static bool
delete_key(const CacheStore *store, const char *key, int keylen, int nslen,
		   int flags)
{
	/* a value pending in this transaction is live for it */
	bool		pending = (cache_pending_lookup(store, key, keylen, NULL, NULL) ==
						   CACHE_PENDING_VALUE);
	bool		removed;

	removed = cache_coherent_invalidate(store, CACHE_OP_KEY, key, keylen,
										nslen, flags) > 0 || pending;
	if (removed)
		cache_stat_add(store->id, CACHE_STAT_DELETES, 1);
	log_key(store, removed ? "deleted" : "delete found no", key, keylen);
	return removed;
}

bool
cache_delete(const CacheStore *store, const char *key, int keylen)
{
	return delete_key(store, key, keylen, keylen, 0);
}

/* Bulk invalidation: applied now, remembered for the commit-time repeat. */
static int64
invalidate(const CacheStore *store, CacheOpKind kind, const char *arg,
		   int len, int flags)
{
	int64		n;
	int			nslen = len;

	/*
	 * A pattern's namespace is its literal start ("users:*" -> "users:");
	 * arg is not NUL-terminated.
	 */
	if (kind == CACHE_OP_PATTERN)
		for (nslen = 0; nslen < len && !strchr("*?[\\", arg[nslen]); nslen++)
			;
	n = cache_coherent_invalidate(store, kind, arg, len, nslen, flags);
	cache_stat_add(store->id, CACHE_STAT_INVALIDATIONS, n);
	if (DEBUG1_WANTED())
		ereport(DEBUG1,
				(errmsg_internal("cache_ext: %s \"%.*s\" removed " INT64_FORMAT " %s (%s)",
								 kind == CACHE_OP_PREFIX ? "invalidate prefix" :
								 kind == CACHE_OP_PATTERN ? "invalidate pattern" : "flush",
								 len, arg, n, n == 1 ? "key" : "keys",
								 store->name)));
	return n;
}

int64
cache_invalidate_prefix(const CacheStore *store, const char *prefix, int len)
{
	return invalidate(store, CACHE_OP_PREFIX, prefix, len, 0);
}

int64
cache_invalidate_pattern(const CacheStore *store, const char *pattern, int len)
{
	return invalidate(store, CACHE_OP_PATTERN, pattern, len, 0);
}

int64
cache_flush(const CacheStore *store)
{
	return invalidate(store, CACHE_OP_ALL, "", 0, 0);
}

int32
cache_ttl(const CacheStore *store, const char *key, int keylen, bool *found)
{
	int			ttl;

	switch (cache_pending_lookup(store, key, keylen, NULL, &ttl))
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
	if (queued_miss(store, key, keylen))
	{
		*found = false;
		return 0;
	}
	return store->ttl(key, keylen, found);
}

/* ---- by triggers: every store a write invalidates ---- */

void
cache_written_key(const char *key, int keylen, int nslen)
{
	const CacheStore *stores[CACHE_NUM_STORES];
	int			n = cache_written_stores(stores);

	for (int i = 0; i < n; i++)
		delete_key(stores[i], key, keylen, nslen, CACHE_INV_BY_WRITE);
}

void
cache_written_prefix(const char *prefix, int len, bool spares_row_images)
{
	const CacheStore *stores[CACHE_NUM_STORES];
	int			n = cache_written_stores(stores);

	for (int i = 0; i < n; i++)
		invalidate(stores[i], CACHE_OP_PREFIX, prefix, len,
				   CACHE_INV_BY_WRITE |
				   (spares_row_images ? CACHE_INV_SPARES_ROW_IMAGES : 0));
}

void
cache_written_row(const char *key, int keylen, int nslen,
				  const char *val, Size vallen, int ttl)
{
	const CacheStore *stores[CACHE_NUM_STORES];
	int			n = cache_written_stores(stores);

	for (int i = 0; i < n; i++)
	{
		/* a row image not stored must not leave the previous one behind */
		if (!set_common(stores[i], key, keylen, nslen, val, vallen, ttl, true))
			delete_key(stores[i], key, keylen, nslen, CACHE_INV_BY_WRITE);
	}
}
