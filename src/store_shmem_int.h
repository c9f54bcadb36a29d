/*-------------------------------------------------------------------------
 *
 * store_shmem_int.h
 *		The shared-memory store's layout and what its two files share:
 *		store_shmem.c (the arena, gets, sets), store_shmem_evict.c (the
 *		CLOCK hand) and store_shmem_bulk.c (prefix, pattern and
 *		whole-database removal).
 *		Nothing else in the extension includes this.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STORE_SHMEM_INT_H
#define STORE_SHMEM_INT_H

#include "common/hashfn.h"
#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#define CACHE_PARTITIONS	128
#define CACHE_BLOCK_SIZE	128

typedef uint32 BlockNo;

#define InvalidBlock		((BlockNo) 0xFFFFFFFF)

typedef struct CacheBlock
{
	BlockNo		next;			/* next block of the same entry */
	char		data[CACHE_BLOCK_SIZE - sizeof(BlockNo)];
} CacheBlock;

/* The first block of an entry. */
typedef struct CacheEntry
{
	BlockNo		next;			/* overlays CacheBlock.next */
	BlockNo		hnext;			/* hash chain */
	uint32		hash;
	Oid			dbid;
	uint32		vallen;
	uint16		keylen;
	TimestampTz expires;		/* 0: never */
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* key, then value */
} CacheEntry;

#define HEAD_PAYLOAD	(CACHE_BLOCK_SIZE - offsetof(CacheEntry, data))
#define CONT_PAYLOAD	(CACHE_BLOCK_SIZE - offsetof(CacheBlock, data))

StaticAssertDecl(sizeof(CacheBlock) == CACHE_BLOCK_SIZE, "block size");
StaticAssertDecl(offsetof(CacheEntry, data) < CACHE_BLOCK_SIZE, "header fits");

typedef struct CachePartition
{
	pg_atomic_uint32 seq;		/* odd while the index is being changed */
	uint32		nentries;
	uint64		links;			/* entries ever linked in: see generation */
} CachePartition;

/*
 * What one database's entries hold, for cache_stats(): counted when entries
 * are linked and unlinked, so reading it costs nothing.  Databases past the
 * last slot share "other_dbs".
 */
#define MAX_DB_SLOTS 64

typedef struct DbUsage
{
	pg_atomic_uint32 dbid;		/* InvalidOid: free */
	pg_atomic_uint64 entries;
	pg_atomic_uint64 blocks;
} DbUsage;

/*
 * How many linked entries have keys that start with given bytes: counts
 * by a hash of the first 2, 4 and 8 bytes of the key (and the database),
 * kept as entries are linked and unlinked.  A prefix invalidation whose
 * count is zero at any length its prefix covers has nothing to remove and
 * need not scan the key heads: that is what a write to a table whose
 * prefix target has nothing cached costs (heads_absent in
 * store_shmem_bulk.c).  Collisions only send an invalidation to the scan.
 */
#define HEAD_COUNT_LENS		3
#define HEAD_COUNT_SLOTS	4096

static const int head_count_len[HEAD_COUNT_LENS] = {2, 4, 8};

typedef struct CacheShared
{
	uint32		nblocks;
	uint32		nbuckets;		/* per partition, a power of 2 */
	slock_t		free_lock;
	uint32		nfree;
	pg_atomic_uint64 hand;		/* CLOCK hand: blocks passed, ever */
	pg_atomic_uint32 high_water;	/* blocks ever handed out are below this */
	DbUsage		dbs[MAX_DB_SLOTS];
	DbUsage		other_dbs;
	pg_atomic_uint32 head_counts[HEAD_COUNT_LENS][HEAD_COUNT_SLOTS];
	CachePartition parts[CACHE_PARTITIONS];
} CacheShared;

/* pointers into the arena, set in every backend at attach (store_shmem.c) */
extern CacheShared *shm_shared;
extern LWLockPadded *shm_locks;
extern BlockNo *shm_buckets;
extern BlockNo *shm_free_stack;
extern uint64 *shm_key_heads;	/* per block: head_of() its key, or 0 */
extern uint8 *shm_visited;	/* per block: CLOCK's flag for its entry */
extern CacheBlock *shm_blocks;

#define ENTRY(b)		((CacheEntry *) &shm_blocks[(b)])

#define PART_LOCK(p)	(&shm_locks[(p)].lock)
#define BUCKET(p, h)	(&shm_buckets[(Size) (p) * shm_shared->nbuckets + \
								  (((h) / CACHE_PARTITIONS) & (shm_shared->nbuckets - 1))])

static inline uint32
blocks_for(Size len)
{
	if (len <= HEAD_PAYLOAD)
		return 1;
	return 1 + (len - HEAD_PAYLOAD + CONT_PAYLOAD - 1) / CONT_PAYLOAD;
}

static inline uint32
entry_blocks(CacheEntry *e)
{
	return blocks_for((Size) e->keylen + e->vallen);
}

/*
 * Exclusive access to a partition, for any change to its index: the
 * sequence number is odd meanwhile, which tells readers without the lock
 * (read_unlocked) that what they read may be torn.
 */
static inline void
part_lock(int part)
{
	pg_atomic_uint32 *seq = &shm_shared->parts[part].seq;

	LWLockAcquire(PART_LOCK(part), LW_EXCLUSIVE);

	/*
	 * Odd, whatever it was: should an ERROR ever escape a section before
	 * part_unlock(), the number stays odd (readers then use the lock) and
	 * the next writer does not turn the parity around.
	 */
	pg_atomic_write_u32(seq, (pg_atomic_read_u32(seq) + 1) | 1);
	pg_write_barrier();
}

static inline void
part_unlock(int part)
{
	pg_atomic_uint32 *seq = &shm_shared->parts[part].seq;

	Assert(pg_atomic_read_u32(seq) & 1);
	pg_write_barrier();
	pg_atomic_write_u32(seq, pg_atomic_read_u32(seq) + 1);
	LWLockRelease(PART_LOCK(part));
}

static inline bool
is_expired(CacheEntry *e, TimestampTz now)
{
	return e->expires != 0 && e->expires <= now;
}

/*
 * The first (up to) 8 bytes of a key, as a number: never 0 for a key, as
 * keys are not empty and text holds no NUL byte.
 */
static inline uint64
head_of(const char *key, int len)
{
	uint64		h = 0;

	memcpy(&h, key, Min(len, (int) sizeof(h)));
	return h;
}

/* The head count of keys whose first len bytes are those of head. */
static inline pg_atomic_uint32 *
head_count(int l, uint64 head, Oid dbid)
{
	uint64		mask = 0;
	uint64		h;

	memset(&mask, 0xFF, head_count_len[l]);
	h = head & mask;
	return &shm_shared->head_counts[l][hash_combine(murmurhash32((uint32) h),
												murmurhash32((uint32) (h >> 32) ^ dbid)) %
								   HEAD_COUNT_SLOTS];
}

typedef enum MatchKind
{
	MATCH_DATABASE,				/* every entry of the database "dbid" */
	MATCH_ALL,
	MATCH_PREFIX,
	MATCH_PATTERN
} MatchKind;

/* store_shmem.c */
extern void shm_require(void);
extern void shm_free_chains(const BlockNo *heads, int nheads);
extern bool shm_chain_read(CacheEntry *e, Size off, char *dst, Size len);
extern void shm_unlink_entry(int part, BlockNo b);

/* store_shmem_evict.c */
extern bool shm_still_linked(int part, BlockNo b);
extern void shm_evict(uint32 want);
extern void shm_place_head(BlockNo *chain, uint32 n);

/* store_shmem_bulk.c */
extern int64 shm_remove_matching(MatchKind kind, Oid dbid, const char *arg, int arglen);
extern int64 shmem_invalidate_prefix(const char *prefix, int len);
extern int64 shmem_invalidate_pattern(const char *pattern, int len);
extern int64 shmem_flush(void);

#endif							/* STORE_SHMEM_INT_H */
