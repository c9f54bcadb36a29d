/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Hit/miss/... counters behind cache_stats() and the cache_ext_stats
 *		view, the sizes behind cache_ext_stats_database, and the keys that
 *		cache_fetch() waits for (cache_ext_fetch_locks).
 *
 * Each backend counts into its own slot of shared memory (indexed by its
 * PGPROC number), so the hot path is an unlocked add to a cache line no
 * other backend writes.  cache_stats() sums the slots; cache_reset_stats()
 * records the current sums as a baseline instead of zeroing slots that
 * their owners may be writing at that moment.  Without
 * shared_preload_libraries the counters are the session's own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cache_ext.h"
#include "invalq.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "access/twophase.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#define NUM_STORES 2

/*
 * How much of a key cache_ext_fetch_locks shows: enough to tell keys
 * apart, small enough for a slot per backend.
 */
#define FETCH_KEY_SHOWN 200

typedef struct StatSlot
{
	pg_atomic_uint64 c[NUM_STORES][CACHE_NUM_COUNTERS];
} StatSlot;

/*
 * The key of one backend's cache_fetch().  Only its backend writes it;
 * readers copy it and retry while changecount is odd or moved (the
 * protocol of PgBackendStatus.st_changecount).
 */
typedef struct FetchKeySlot
{
	pg_atomic_uint32 changecount;
	bool		used;
	uint8		store;
	Oid			dbid;
	uint64		hash;
	int			keylen;
	char		key[FETCH_KEY_SHOWN];
} FetchKeySlot;

typedef struct StatsShared
{
	slock_t		lock;			/* protects baseline and reset_time */
	uint64		baseline[NUM_STORES][CACHE_NUM_COUNTERS];
	TimestampTz reset_time;
	int			nslots;
	StatSlot	slots[FLEXIBLE_ARRAY_MEMBER];
	/* then, at FETCH_KEYS(), a FetchKeySlot per slot */
} StatsShared;

#define FETCH_KEYS() \
	((FetchKeySlot *) ((char *) stats + \
					   MAXALIGN(offsetof(StatsShared, slots) + \
								stats->nslots * sizeof(StatSlot))))

static StatsShared *stats = NULL;
static uint64 local_counts[NUM_STORES][CACHE_NUM_COUNTERS];
static TimestampTz local_reset_time = 0;

static int
stats_nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
slots_size(void)
{
	return add_size(offsetof(StatsShared, slots),
					mul_size(stats_nslots(), sizeof(StatSlot)));
}

Size
cache_stats_shmem_size(void)
{
	return add_size(MAXALIGN(slots_size()),
					mul_size(stats_nslots(), sizeof(FetchKeySlot)));
}

void
cache_stats_shmem_init(void)
{
	bool		found;

	stats = ShmemInitStruct("cache_ext stats", cache_stats_shmem_size(), &found);
	if (!found)
	{
		SpinLockInit(&stats->lock);
		memset(stats->baseline, 0, sizeof(stats->baseline));
		/* the counters start with the server */
		stats->reset_time = GetCurrentTimestamp();
		stats->nslots = stats_nslots();
		for (int i = 0; i < stats->nslots; i++)
			for (int s = 0; s < NUM_STORES; s++)
				for (int c = 0; c < CACHE_NUM_COUNTERS; c++)
					pg_atomic_init_u64(&stats->slots[i].c[s][c], 0);
		for (int i = 0; i < stats->nslots; i++)
		{
			pg_atomic_init_u32(&FETCH_KEYS()[i].changecount, 0);
			FETCH_KEYS()[i].used = false;
		}
	}
}

void
cache_stat_add(CacheBackend store, CacheCounter c, int64 n)
{
	if (n == 0)
		return;
	if (stats != NULL && MyProc != NULL && MyProc->pgprocno < stats->nslots)
	{
		pg_atomic_uint64 *v = &stats->slots[MyProc->pgprocno].c[store][c];

		/* only this backend writes its slot: no locked instruction needed */
		pg_atomic_write_u64(v, pg_atomic_read_u64(v) + n);
	}
	else
		local_counts[store][c] += n;
}

static void
sum_slots(CacheBackend store, uint64 *sums)
{
	for (int c = 0; c < CACHE_NUM_COUNTERS; c++)
	{
		sums[c] = local_counts[store][c];
		if (stats != NULL)
			for (int i = 0; i < stats->nslots; i++)
				sums[c] += pg_atomic_read_u64(&stats->slots[i].c[store][c]);
	}
}

void
cache_stat_read(CacheBackend store, int64 *values)
{
	uint64		sums[CACHE_NUM_COUNTERS];

	sum_slots(store, sums);
	if (stats != NULL)
	{
		SpinLockAcquire(&stats->lock);
		for (int c = 0; c < CACHE_NUM_COUNTERS; c++)
			sums[c] -= stats->baseline[store][c];
		SpinLockRelease(&stats->lock);
	}
	for (int c = 0; c < CACHE_NUM_COUNTERS; c++)
		values[c] = (int64) sums[c];
}

void
cache_stat_reset(void)
{
	uint64		sums[NUM_STORES][CACHE_NUM_COUNTERS];
	TimestampTz now = GetCurrentTimestamp();

	if (stats == NULL)
	{
		memset(local_counts, 0, sizeof(local_counts));
		local_reset_time = now;
		return;
	}
	for (int s = 0; s < NUM_STORES; s++)
		sum_slots(s, sums[s]);
	SpinLockAcquire(&stats->lock);
	memcpy(stats->baseline, sums, sizeof(sums));
	stats->reset_time = now;
	SpinLockRelease(&stats->lock);
}

/*
 * When the counters were last reset: cache_reset_stats(), else the start
 * of the server (of the session, without shared_preload_libraries).
 */
TimestampTz
cache_stat_reset_time(void)
{
	TimestampTz t;

	if (stats == NULL)
	{
		if (local_reset_time == 0)
			local_reset_time = MyStartTimestamp;
		return local_reset_time;
	}
	SpinLockAcquire(&stats->lock);
	t = stats->reset_time;
	SpinLockRelease(&stats->lock);
	return t;
}

/* ---- the keys cache_fetch() waits for ---- */

static FetchKeySlot *
my_fetch_slot(void)
{
	if (stats == NULL || MyProc == NULL || MyProc->pgprocno >= stats->nslots)
		return NULL;
	return &FETCH_KEYS()[MyProc->pgprocno];
}

void
cache_fetch_key_note(CacheBackend store, uint64 hash, const char *key, int keylen)
{
	FetchKeySlot *slot = my_fetch_slot();

	if (slot == NULL)
		return;
	pg_atomic_fetch_add_u32(&slot->changecount, 1);
	pg_write_barrier();
	slot->used = true;
	slot->store = (uint8) store;
	slot->dbid = MyDatabaseId;
	slot->hash = hash;
	/* whole characters only: the view returns it as text */
	slot->keylen = pg_mbcliplen(key, keylen, FETCH_KEY_SHOWN);
	memcpy(slot->key, key, slot->keylen);
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&slot->changecount, 1);
}

void
cache_fetch_key_clear(void)
{
	FetchKeySlot *slot = my_fetch_slot();

	if (slot == NULL || !slot->used)
		return;
	pg_atomic_fetch_add_u32(&slot->changecount, 1);
	pg_write_barrier();
	slot->used = false;
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&slot->changecount, 1);
}

/* A consistent copy of slot i; false if it holds no key. */
static bool
read_fetch_slot(int i, FetchKeySlot *copy)
{
	FetchKeySlot *slot = &FETCH_KEYS()[i];

	for (;;)
	{
		uint32		before = pg_atomic_read_u32(&slot->changecount);
		uint32		after;

		pg_read_barrier();
		memcpy((char *) copy + offsetof(FetchKeySlot, used),
			   (char *) slot + offsetof(FetchKeySlot, used),
			   sizeof(FetchKeySlot) - offsetof(FetchKeySlot, used));
		pg_read_barrier();
		after = pg_atomic_read_u32(&slot->changecount);
		if (before == after && (before & 1) == 0)
			return copy->used;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * cache_ext_fetch_keys(): one row per backend inside cache_fetch() between
 * a miss and storing its result: pid, store, the hash of its key lock (as
 * pg_locks shows it: classid << 32 | objid) and the key, NULL when it is
 * another database's (whose encoding may differ from this one's).
 */
PG_FUNCTION_INFO_V1(sql_cache_ext_fetch_keys);

Datum
sql_cache_ext_fetch_keys(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (stats == NULL)
		return (Datum) 0;
	for (int i = 0; i < stats->nslots; i++)
	{
		FetchKeySlot copy;
		PGPROC	   *proc = GetPGProcByNumber(i);
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		if (!read_fetch_slot(i, &copy) || proc->pid == 0)
			continue;
		values[0] = Int32GetDatum(proc->pid);
		values[1] = CStringGetTextDatum(cache_store_by_id(copy.store)->name);
		values[2] = Int64GetDatum((int64) copy.hash);
		if (copy.dbid == MyDatabaseId)
			values[3] = PointerGetDatum(cstring_to_text_with_len(copy.key, copy.keylen));
		else
			nulls[3] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---- the views ---- */

/*
 * cache_ext_stats_rows(): the cache_ext_stats view, one row per store,
 * server-wide.  Only counters and the queue: it never asks a store
 * anything, so it cannot fail or wait.
 */
PG_FUNCTION_INFO_V1(sql_cache_ext_stats_rows);

Datum
sql_cache_ext_stats_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz reset_time = cache_stat_reset_time();

	InitMaterializedSRF(fcinfo, 0);
	for (int s = 0; s < NUM_STORES; s++)
	{
		int64		counters[CACHE_NUM_COUNTERS];
		Datum		values[18];
		bool		nulls[18] = {0};
		int			i = 0;
		int64		lookups;

		cache_stat_read(s, counters);
		values[i++] = CStringGetTextDatum(cache_store_by_id(s)->name);
		for (int c = 0; c < CACHE_NUM_COUNTERS; c++)
			values[i++] = Int64GetDatum(counters[c]);
		/* the queue holds Redis invalidations only */
		nulls[i] = (s != CACHE_BACKEND_REDIS);
		values[i++] = Int64GetDatum(cache_queue_length());
		nulls[i] = (s != CACHE_BACKEND_REDIS);
		values[i++] = Int64GetDatum(cache_queue_delivered());
		lookups = counters[CACHE_STAT_HITS] + counters[CACHE_STAT_MISSES];
		nulls[i] = (lookups == 0);
		values[i++] = Float8GetDatum(lookups > 0 ?
									 (double) counters[CACHE_STAT_HITS] / lookups : 0.0);
		values[i++] = TimestampTzGetDatum(reset_time);
		Assert(i == rsinfo->setDesc->natts);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * The size of a store as this database's sessions see it, or false when
 * the store cannot tell.  A failure here is neither raised (whatever
 * cache_ext.on_error says: a monitoring query must not fail because the
 * store it watches does) nor counted in "errors": the view only probed.
 */
static bool
probe_size(const CacheStore *store, CacheStoreSize *size)
{
	int			saved_on_error = cache_on_error;
	uint64		failures = cache_store_failures;
	uint64		failed;

	if (store->id == CACHE_BACKEND_SHMEM && !cache_preloaded)
		return false;
	if (store->id == CACHE_BACKEND_REDIS && !cache_redis_configured())
		return false;
	cache_on_error = CACHE_ON_ERROR_IGNORE;
	PG_TRY();
	{
		store->size(size);
	}
	PG_FINALLY();
	{
		cache_on_error = saved_on_error;
	}
	PG_END_TRY();
	failed = cache_store_failures - failures;
	if (failed > 0)
	{
		cache_stat_add(store->id, CACHE_STAT_ERRORS, -(int64) failed);
		return false;
	}
	return true;
}

/*
 * cache_ext_stats_database_rows(): the cache_ext_stats_database view, one
 * row per store for this database.  NULL for what a store cannot tell:
 * Redis down or not configured, shared memory not preloaded.
 */
PG_FUNCTION_INFO_V1(sql_cache_ext_stats_database_rows);

Datum
sql_cache_ext_stats_database_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int s = 0; s < NUM_STORES; s++)
	{
		const CacheStore *store = cache_store_by_id(s);
		CacheStoreSize size;
		Datum		values[4];
		bool		nulls[4] = {0};
		bool		known;

		known = probe_size(store, &size);
		values[0] = CStringGetTextDatum(store->name);
		nulls[1] = !known || size.entries < 0;
		values[1] = Int64GetDatum(known ? size.entries : 0);
		nulls[2] = !known || size.bytes_used < 0;
		values[2] = Int64GetDatum(known ? size.bytes_used : 0);
		nulls[3] = !known || size.bytes_max < 0;
		values[3] = Int64GetDatum(known ? size.bytes_max : 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * cache_ext_written_stores(): the stores a write invalidates, whatever the
 * session's cache_ext.backend (cache_written_stores()).
 */
PG_FUNCTION_INFO_V1(sql_cache_ext_written_stores);

Datum
sql_cache_ext_written_stores(PG_FUNCTION_ARGS)
{
	const CacheStore *stores[CACHE_NUM_STORES];
	Datum		names[CACHE_NUM_STORES];
	int			n = cache_written_stores(stores);

	for (int i = 0; i < n; i++)
		names[i] = CStringGetTextDatum(stores[i]->name);
	PG_RETURN_ARRAYTYPE_P(construct_array(names, n, TEXTOID, -1, false,
										  TYPALIGN_INT));
}
