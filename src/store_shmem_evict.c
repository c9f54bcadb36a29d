/*-------------------------------------------------------------------------
 *
 * store_shmem_evict.c
 *		The shared-memory store's eviction: one CLOCK hand over the whole
 *		arena (see store_shmem.c for the arena and its locks, and
 *		docs/eviction.md for what a user sees).
 *
 * When a set finds the free stack empty it moves the hand, which walks the
 * block numbers in order.  At an entry's first block (one with a key head)
 * it clears the entry's visited flag if a hit set it, and evicts the entry
 * otherwise, or when it has expired.  A single hand keeps whatever was read
 * during its last turn, at every value size; SIEVE run per partition did
 * not (partitions drifted to very different sizes, and with large values a
 * partition held only a few entries).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cache_ext.h"
#include "utils/timestamp.h"

#include "store_shmem_int.h"

/*
 * Blocks of the hand's path a setter claims at a time.  Every entry that
 * starts in a claimed window is dealt with, so a call may free a few
 * entries more than it wanted: they are the slack that spares the next
 * setters an eviction.
 */
#define CLOCK_WINDOW	32

typedef struct Sweep
{
	TimestampTz now;
	uint32		freed;			/* blocks */
	int64		nevicted;		/* entries, expired ones included */
	int64		nexpired;
	int			nvictims;		/* of the current window */
	BlockNo		victims[CLOCK_WINDOW];
} Sweep;

/*
 * Is b, read without a lock as an entry's first block, a linked entry of
 * part?  Its hash, read again here, only changes once the entry has left
 * the index; a stale one leads to a bucket of part that does not hold b.
 */
bool
shm_still_linked(int part, BlockNo b)
{
	BlockNo		cur = *BUCKET(part, ENTRY(b)->hash);

	while (cur != InvalidBlock && cur != b)
		cur = ENTRY(cur)->hnext;
	return cur == b;
}

/*
 * The hand found b, an entry's first block, unvisited or expired: evict the
 * entry if, under its partition's lock, it still is.  A hit that came in
 * since the hand looked saves it.
 */
static void
sweep_evict(Sweep *sw, BlockNo b)
{
	CacheEntry *e = ENTRY(b);
	int			part = *(volatile uint32 *) &e->hash % CACHE_PARTITIONS;

	part_lock(part);
	if (shm_key_heads[b] != 0 && shm_still_linked(part, b))
	{
		bool		expired = is_expired(e, sw->now);

		if (expired || !shm_visited[b])
		{
			shm_unlink_entry(part, b);
			sw->freed += entry_blocks(e);
			sw->victims[sw->nvictims++] = b;
			if (expired)
				sw->nexpired++;
		}
	}
	part_unlock(part);
}

/*
 * Free at least "want" blocks: move the hand, a window at a time, clearing
 * the flag of each visited entry it passes and evicting the others.  One
 * call never moves the hand a whole turn, so it never comes back to an
 * entry whose flag it has just cleared: the hit that set the flag buys the
 * entry a turn, however few entries the store holds.  When every entry had
 * its flag set, the call ends without enough room and the caller calls
 * again, and that call finds the flags cleared.
 */
void
shm_evict(uint32 want)
{
	Sweep		sw;
	uint32		nblocks = shm_shared->nblocks;
	uint32		window = Min(CLOCK_WINDOW, nblocks);
	uint64		first = 0;

	sw.now = GetCurrentTimestamp();
	sw.freed = 0;
	sw.nevicted = 0;
	sw.nexpired = 0;

	for (bool started = false; sw.freed < want; started = true)
	{
		uint64		start = pg_atomic_fetch_add_u64(&shm_shared->hand, window);

		if (!started)
			first = start;
		else if (start + window > first + nblocks)
			break;

		sw.nvictims = 0;
		for (uint64 pos = start; pos < start + window; pos++)
		{
			BlockNo		b = (BlockNo) (pos % nblocks);

			/* only first blocks of linked entries have a key head */
			if (((volatile uint64 *) shm_key_heads)[b] == 0)
				continue;
			/* unlocked: a hit racing with this may lose its flag, no harm */
			if (shm_visited[b] && !is_expired(ENTRY(b), sw.now))
			{
				shm_visited[b] = 0;
				continue;
			}
			sweep_evict(&sw, b);
		}
		shm_free_chains(sw.victims, sw.nvictims);
		sw.nevicted += sw.nvictims;
	}
	cache_stat_add(CACHE_BACKEND_SHMEM, CACHE_STAT_EVICTIONS, sw.nevicted - sw.nexpired);
	cache_stat_add(CACHE_BACKEND_SHMEM, CACHE_STAT_EXPIRATIONS, sw.nexpired);
}

/*
 * Make the block of a new chain that the hand will reach last the entry's
 * first block, the one the hand looks at.  The hand's victims were just
 * behind it, so there is usually one of theirs: the new entry then gets a
 * whole turn before the hand judges it.  Taken as it comes, the first block
 * could as well be a block of a victim's tail lying just ahead of the hand,
 * and the entry be evicted before anyone had a chance to read it.
 */
void
shm_place_head(BlockNo *chain, uint32 n)
{
	uint64		nblocks = shm_shared->nblocks;
	uint64		hand = pg_atomic_read_u64(&shm_shared->hand) % nblocks;
	uint64		best_dist = 0;
	uint32		best = 0;

	for (uint32 i = 0; i < n; i++)
	{
		uint64		dist = (chain[i] + nblocks - hand) % nblocks;

		if (dist > best_dist)
		{
			best_dist = dist;
			best = i;
		}
	}
	if (best != 0)
	{
		BlockNo		tmp = chain[0];

		chain[0] = chain[best];
		chain[best] = tmp;
	}
}
