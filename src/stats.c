/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Hit/miss/... counters behind cache_stats().
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
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "access/twophase.h"

#define NUM_STORES 2

typedef struct StatSlot
{
	pg_atomic_uint64 c[NUM_STORES][CACHE_NUM_COUNTERS];
} StatSlot;

typedef struct StatsShared
{
	slock_t		lock;			/* protects baseline */
	uint64		baseline[NUM_STORES][CACHE_NUM_COUNTERS];
	int			nslots;
	StatSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} StatsShared;

static StatsShared *stats = NULL;
static uint64 local_counts[NUM_STORES][CACHE_NUM_COUNTERS];

static int
stats_nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

Size
cache_stats_shmem_size(void)
{
	return add_size(offsetof(StatsShared, slots),
					mul_size(stats_nslots(), sizeof(StatSlot)));
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
		stats->nslots = stats_nslots();
		for (int i = 0; i < stats->nslots; i++)
			for (int s = 0; s < NUM_STORES; s++)
				for (int c = 0; c < CACHE_NUM_COUNTERS; c++)
					pg_atomic_init_u64(&stats->slots[i].c[s][c], 0);
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

	if (stats == NULL)
	{
		memset(local_counts, 0, sizeof(local_counts));
		return;
	}
	for (int s = 0; s < NUM_STORES; s++)
		sum_slots(s, sums[s]);
	SpinLockAcquire(&stats->lock);
	memcpy(stats->baseline, sums, sizeof(sums));
	SpinLockRelease(&stats->lock);
}
