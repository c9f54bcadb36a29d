/*-------------------------------------------------------------------------
 *
 * store_shmem_bulk.c
 *		The shared-memory store's bulk removal: every key under a prefix,
 *		matching a pattern, of the database (cache_flush) or of a dropped
 *		database.  See store_shmem.c for the arena and its locks.
 *
 * A prefix (or a pattern that starts with literal bytes) is first looked
 * up in the head counts: when no linked entry can start with those bytes
 * there is nothing to do.  Otherwise it scans the key heads without a lock
 * and checks each candidate under its partition's lock; other patterns
 * walk the hash buckets.  No lock is held for more than a batch.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cache_ext.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/timestamp.h"

#include "store_shmem_int.h"

/* buckets handled per lock acquisition by bulk invalidation */
#define SCAN_CHUNK_BUCKETS	256


static bool
entry_matches(CacheEntry *e, MatchKind kind, Oid dbid,
			  const char *arg, int arglen)
{
	char		buf[CACHE_MAX_KEY_LEN];
	const char *key = e->data;

	if (e->dbid != dbid)
		return false;
	if (kind == MATCH_ALL || kind == MATCH_DATABASE)
		return true;
	if (kind == MATCH_PREFIX)
	{
		if (e->keylen < arglen)
			return false;
		if (arglen > HEAD_PAYLOAD)
		{
			(void) shm_chain_read(e, 0, buf, arglen);
			key = buf;
		}
		return memcmp(key, arg, arglen) == 0;
	}
	if (e->keylen > HEAD_PAYLOAD)
	{
		(void) shm_chain_read(e, 0, buf, e->keylen);
		key = buf;
	}
	return cache_glob_match(arg, arglen, key, e->keylen);
}

/*
 * Bulk removal.  No lock is held for more than SCAN_CHUNK_BUCKETS buckets
 * or MAX_BULK_VICTIMS removals, so readers never wait long whatever the
 * size of the store.  Entries set into a part already walked while the walk
 * goes on are left alone: they were set after the call started.
 */
#define MAX_BULK_VICTIMS 1024

typedef struct BulkRemoval
{
	MatchKind	kind;
	Oid			dbid;
	const char *arg;
	int			arglen;
	int64		removed;		/* live entries */
	int64		expired;
	double		longest_ms;		/* longest partition lock hold */
	int			nvictims;
	BlockNo		victims[MAX_BULK_VICTIMS];
	TimestampTz now;
	instr_time	start;
} BulkRemoval;

static void
bulk_lock(BulkRemoval *br, int part)
{
	br->nvictims = 0;
	br->now = GetCurrentTimestamp();
	part_lock(part);
	INSTR_TIME_SET_CURRENT(br->start);
}

static void
bulk_unlock(BulkRemoval *br, int part)
{
	instr_time	held;

	INSTR_TIME_SET_CURRENT(held);
	part_unlock(part);
	INSTR_TIME_SUBTRACT(held, br->start);
	br->longest_ms = Max(br->longest_ms, INSTR_TIME_GET_MILLISEC(held));
	shm_free_chains(br->victims, br->nvictims);
	CHECK_FOR_INTERRUPTS();
}

/* Remove a linked entry if it matches (partition lock held). */
static void
bulk_consider(BulkRemoval *br, int part, BlockNo b)
{
	CacheEntry *e = ENTRY(b);

	if (!entry_matches(e, br->kind, br->dbid, br->arg, br->arglen))
		return;
	if (is_expired(e, br->now))
		br->expired++;
	else
		br->removed++;
	shm_unlink_entry(part, b);
	br->victims[br->nvictims++] = b;
}

/* Visit every entry, bucket by bucket. */
static void
walk_buckets(BulkRemoval *br)
{
	for (int part = 0; part < CACHE_PARTITIONS; part++)
	{
		uint32		i = 0;

		while (i < shm_shared->nbuckets && shm_shared->parts[part].nentries > 0)
		{
			uint32		last = Min(i + SCAN_CHUNK_BUCKETS, shm_shared->nbuckets);

			bulk_lock(br, part);
			for (; i < last && br->nvictims < MAX_BULK_VICTIMS; i++)
			{
				BlockNo		b = shm_buckets[(Size) part * shm_shared->nbuckets + i];

				/* a bucket cut short is scanned again from its start */
				while (b != InvalidBlock && br->nvictims < MAX_BULK_VICTIMS)
				{
					BlockNo		next = ENTRY(b)->hnext;

					bulk_consider(br, part, b);
					b = next;
				}
				if (b != InvalidBlock)
					break;
			}
			bulk_unlock(br, part);
		}
	}
}

typedef struct Candidate
{
	int			part;
	BlockNo		block;
} Candidate;

/*
 * Order candidates by partition, so that each partition's lock is taken
 * once per batch: a counting sort, linear where qsort() took 40% of a
 * removal.  It is stable, so each partition's candidates stay in the block
 * order the scan found them in.
 */
static void
group_by_partition(const Candidate *in, int n, Candidate *out)
{
	int			start[CACHE_PARTITIONS + 1] = {0};

	for (int i = 0; i < n; i++)
		start[in[i].part + 1]++;
	for (int p = 0; p < CACHE_PARTITIONS; p++)
		start[p + 1] += start[p];
	for (int i = 0; i < n; i++)
		out[start[in[i].part]++] = in[i];
}

/*
 * Visit only the entries whose key starts with the first bytes of "lit",
 * found by a sequential scan of key_heads (8 bytes a block) rather than by
 * chasing every entry through the index: a few hundred kB to read for each
 * 10,000 entries instead of one cache miss per entry.  The candidates are
 * read without a lock and checked again under their partition's lock.
 */
static void
walk_heads(BulkRemoval *br, const char *lit, int litlen)
{
	int			n = Min(litlen, (int) sizeof(uint64));
	uint64		want = head_of(lit, n);
	uint64		mask = 0;
	int			maxc = 4 * MAX_BULK_VICTIMS;
	Candidate  *found = palloc(maxc * sizeof(Candidate));
	Candidate  *cand = palloc(maxc * sizeof(Candidate));

	uint32		end = pg_atomic_read_u32(&shm_shared->high_water);

	memset(&mask, 0xFF, n);
	for (uint32 first = 0; first < end;)
	{
		int			ncand = 0;

		for (; first < end && ncand < maxc; first++)
		{
			uint64		h = ((volatile uint64 *) shm_key_heads)[first];

			if (h != 0 && (h & mask) == want)
			{
				found[ncand].part = ENTRY(first)->hash % CACHE_PARTITIONS;
				found[ncand++].block = first;
			}
		}
		group_by_partition(found, ncand, cand);
		for (int i = 0; i < ncand;)
		{
			int			part = cand[i].part;

			bulk_lock(br, part);
			for (; i < ncand && cand[i].part == part &&
				 br->nvictims < MAX_BULK_VICTIMS; i++)
				if (shm_still_linked(part, cand[i].block))
					bulk_consider(br, part, cand[i].block);
			bulk_unlock(br, part);
		}
	}
	pfree(found);
	pfree(cand);
}

/*
 * True if no linked entry of dbid can start with the first litlen bytes of
 * lit, by the head counts: then there is nothing to scan for.  Every
 * length counted that the literal covers is asked, and one zero suffices:
 * a key under the prefix would be counted at each of them.  Asking them all
 * matters, as the 8-byte counts fill up once the store holds many short
 * keys ("user:123"), whose first 8 bytes are all different, while few keys
 * share their first 2 or 4 bytes with the prefix.  An entry linked while
 * this runs may be missed, as the scan may miss it; it was set after the
 * invalidation started.
 */
static bool
heads_absent(Oid dbid, const char *lit, int litlen)
{
	uint64		head = head_of(lit, Min(litlen, (int) sizeof(uint64)));

	/* what was linked before this call started is counted by now */
	pg_memory_barrier();
	for (int l = 0; l < HEAD_COUNT_LENS && head_count_len[l] <= litlen; l++)
		if (pg_atomic_read_u32(head_count(l, head, dbid)) == 0)
			return true;
	return false;
}

/* The literal bytes a glob pattern's matches all start with. */
static int
glob_literal_prefix(const char *pat, int len)
{
	int			n = 0;

	while (n < len && !strchr("*?[\\", pat[n]))
		n++;
	return n;
}

/* Remove the matching entries of a database; returns the live ones removed. */
int64
shm_remove_matching(MatchKind kind, Oid dbid, const char *arg, int arglen)
{
	BulkRemoval *br;
	int64		removed;
	int			litlen = 0;

	shm_require();
	br = palloc0(sizeof(BulkRemoval));
	br->kind = kind;
	br->dbid = dbid;
	br->arg = arg;
	br->arglen = arglen;
	if (kind == MATCH_PREFIX)
		litlen = arglen;
	else if (kind == MATCH_PATTERN)
		litlen = glob_literal_prefix(arg, arglen);

	if (litlen > 0)
	{
		if (!heads_absent(dbid, arg, litlen))
			walk_heads(br, arg, litlen);
	}
	else
		walk_buckets(br);

	cache_stat_add(CACHE_BACKEND_SHMEM, CACHE_STAT_EXPIRATIONS, br->expired);
	elog(DEBUG2, "cache_ext: longest partition lock hold during bulk removal: %.3f ms",
		 br->longest_ms);
	removed = br->removed;
	pfree(br);
	return removed;
}

int64
shmem_invalidate_prefix(const char *prefix, int len)
{
	return shm_remove_matching(MATCH_PREFIX, MyDatabaseId, prefix, len);
}

int64
shmem_invalidate_pattern(const char *pattern, int len)
{
	return shm_remove_matching(MATCH_PATTERN, MyDatabaseId, pattern, len);
}

int64
shmem_flush(void)
{
	return shm_remove_matching(MATCH_ALL, MyDatabaseId, NULL, 0);
}
