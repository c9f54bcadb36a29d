/*-------------------------------------------------------------------------
 *
 * store_shmem.c
 *		The shared-memory store: a fixed arena of blocks, a partitioned
 *		hash index and SIEVE eviction.
 *
 * Memory model.  cache_ext.shmem_size is carved, once, into
 *   - a header and CACHE_PARTITIONS partitions (queue heads, counters),
 *   - the hash buckets (one per two blocks, split evenly by partition),
 *   - a stack of free block numbers,
 *   - the blocks: CACHE_BLOCK_SIZE bytes each.
 * An entry is a chain of blocks.  The first one holds the entry header, then
 * key and value bytes continue through the chain.  Any value size works
 * without fragmentation, and nothing is allocated at run time.
 *
 * Concurrency.  A key's hash picks its partition; each partition has its
 * own LWLock, hash buckets and SIEVE queue.  Every change to a partition's
 * index is made under its lock held exclusively, which also makes the
 * partition's sequence number odd for the duration (a seqlock).  A get
 * reads without any lock and keeps what it read only if the sequence number
 * was even and unchanged from before the first read to after the last:
 * a hit then writes no shared cache line but one byte of "visited" flags,
 * kept apart from the blocks so that a stale write can only touch a flag.
 * A spoiled try spins until the writer is out; after a few, a get falls
 * back to the lock, held shared.
 * Block allocation happens before taking a partition lock and data is
 * copied into the new chain while no lock is held; the partition lock is
 * then held only to link the entry in.  Chains that leave the index are
 * returned to the free stack after the partition lock is released (a
 * reader that still follows them sees the sequence number moved).  The
 * free stack has its own spinlock, held only for a memcpy; it is the only
 * lock ever taken while a partition lock is held, so there is no ordering
 * problem.  Bulk invalidation walks one partition a few hundred buckets
 * at a time, so no lock is held for long however large the store is.
 *
 * Eviction.  When the free stack runs dry, a setter evicts from partitions
 * in turn with SIEVE (Zhang et al., NSDI '24): a hit sets the entry's
 * "visited" flag; the hand walks from the oldest entry to the newest,
 * clearing flags and evicting the first unvisited (or expired) entry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "cache.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "portability/instr_time.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#define CACHE_PARTITIONS	128
#define CACHE_BLOCK_SIZE	128
#define CACHE_TRANCHE		"cache_ext"

/* buckets handled per lock acquisition by bulk invalidation */
#define SCAN_CHUNK_BUCKETS	256

/*
 * Tries of a get without the lock before it takes the lock, pauses it may
 * spin between tries while a writer is inside the partition (about 0.1 to
 * 0.5 ms in all), and entries a hash chain may have before a try gives up
 * (chains hold about two).
 */
#define UNLOCKED_TRIES		3
#define MAX_WRITER_SPINS	5000
#define MAX_UNLOCKED_STEPS	1000

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
	BlockNo		newer;			/* SIEVE queue, towards the newest */
	BlockNo		older;			/* SIEVE queue, towards the oldest */
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
	BlockNo		newest;
	BlockNo		oldest;
	BlockNo		hand;			/* SIEVE hand, InvalidBlock = start at oldest */
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

typedef struct CacheShared
{
	uint32		nblocks;
	uint32		nbuckets;		/* per partition, a power of 2 */
	slock_t		free_lock;
	uint32		nfree;
	pg_atomic_uint32 evict_cursor;
	pg_atomic_uint32 high_water;	/* blocks ever handed out are below this */
	DbUsage		dbs[MAX_DB_SLOTS];
	DbUsage		other_dbs;
	CachePartition parts[CACHE_PARTITIONS];
} CacheShared;

/* pointers into the arena, set in every backend at attach */
static CacheShared *shared = NULL;
static LWLockPadded *locks = NULL;
static BlockNo *buckets = NULL;
static BlockNo *free_stack = NULL;
static uint64 *key_heads = NULL;	/* per block: head_of() its key, or 0 */
static uint8 *visited = NULL;	/* per block: SIEVE's flag for its entry */
static CacheBlock *blocks = NULL;

#define ENTRY(b)		((CacheEntry *) &blocks[(b)])

#if defined(__GNUC__) || defined(__clang__)
#define prefetch(p)		__builtin_prefetch(p)
#else
#define prefetch(p)		((void) 0)
#endif
#define PART_LOCK(p)	(&locks[(p)].lock)
#define BUCKET(p, h)	(&buckets[(Size) (p) * shared->nbuckets + \
								  (((h) / CACHE_PARTITIONS) & (shared->nbuckets - 1))])

/* ---- sizing and startup ---- */

static Size
arena_bytes(void)
{
	return (Size) cache_shmem_size_mb * 1024 * 1024;
}

/*
 * Blocks and buckets that fit in the arena after the fixed header: each
 * block costs its own size, a free-stack slot, a key head, a visited flag
 * and half a bucket.
 */
static void
arena_layout(uint32 *nblocks, uint32 *nbuckets)
{
	Size		avail = arena_bytes() - MAXALIGN(sizeof(CacheShared)) - 4 * PG_CACHE_LINE_SIZE;
	Size		block_cost = CACHE_BLOCK_SIZE + sizeof(BlockNo) + sizeof(uint64) + 1;
	uint32		nb = 1;

	/* one bucket per two blocks, rounded down to a power of 2 per partition */
	while ((Size) nb * 2 * CACHE_PARTITIONS * 2 <= avail / (block_cost + sizeof(BlockNo)))
		nb *= 2;
	*nbuckets = nb;
	*nblocks = (avail - (Size) nb * CACHE_PARTITIONS * sizeof(BlockNo)) / block_cost;
}

Size
cache_shmem_size(void)
{
	return arena_bytes();
}

void
cache_shmem_request(void)
{
	RequestAddinShmemSpace(cache_shmem_size());
	RequestNamedLWLockTranche(CACHE_TRANCHE, CACHE_PARTITIONS);
}

/* Attach to (or create) the store; AddinShmemInitLock is held. */
void
cache_shmem_startup(void)
{
	bool		found;
	char	   *p;
	uint32		nblocks;
	uint32		nbuckets;

	arena_layout(&nblocks, &nbuckets);

	p = ShmemInitStruct("cache_ext store", cache_shmem_size(), &found);
	shared = (CacheShared *) p;
	locks = GetNamedLWLockTranche(CACHE_TRANCHE);
	p += MAXALIGN(sizeof(CacheShared));
	buckets = (BlockNo *) p;
	p += MAXALIGN((Size) nbuckets * CACHE_PARTITIONS * sizeof(BlockNo));
	free_stack = (BlockNo *) p;
	p += MAXALIGN((Size) nblocks * sizeof(BlockNo));
	key_heads = (uint64 *) p;
	p += (Size) nblocks * sizeof(uint64);
	visited = (uint8 *) p;
	p += nblocks;
	blocks = (CacheBlock *) TYPEALIGN(PG_CACHE_LINE_SIZE, p);

	if (!found)
	{
		shared->nblocks = nblocks;
		shared->nbuckets = nbuckets;
		SpinLockInit(&shared->free_lock);
		pg_atomic_init_u32(&shared->evict_cursor, 0);
		pg_atomic_init_u32(&shared->high_water, 0);
		for (int i = 0; i <= MAX_DB_SLOTS; i++)
		{
			DbUsage    *u = (i < MAX_DB_SLOTS) ? &shared->dbs[i] : &shared->other_dbs;

			pg_atomic_init_u32(&u->dbid, InvalidOid);
			pg_atomic_init_u64(&u->entries, 0);
			pg_atomic_init_u64(&u->blocks, 0);
		}
		for (int i = 0; i < CACHE_PARTITIONS; i++)
		{
			pg_atomic_init_u32(&shared->parts[i].seq, 0);
			shared->parts[i].newest = InvalidBlock;
			shared->parts[i].oldest = InvalidBlock;
			shared->parts[i].hand = InvalidBlock;
			shared->parts[i].nentries = 0;
			shared->parts[i].links = 0;
		}
		memset(buckets, 0xFF, (Size) nbuckets * CACHE_PARTITIONS * sizeof(BlockNo));
		memset(key_heads, 0, (Size) nblocks * sizeof(uint64));
		memset(visited, 0, nblocks);
		/* pop from the top; hand out low block numbers first */
		for (uint32 i = 0; i < nblocks; i++)
			free_stack[i] = nblocks - 1 - i;
		shared->nfree = nblocks;
	}

	Assert((char *) (blocks + nblocks) <= (char *) shared + cache_shmem_size());
}

static void
require_shmem(void)
{
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cache_ext's shared-memory store needs shared_preload_libraries = 'cache_ext' in postgresql.conf"),
				 errhint("Add the line, then restart the server; or SET cache_ext.backend = 'redis'.")));
}

/* ---- blocks ---- */

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

/* Take n blocks from the free stack, all or none. */
static bool
pop_blocks(uint32 n, BlockNo *out)
{
	bool		ok = false;

	uint32		top = 0;
	uint32		hw;

	SpinLockAcquire(&shared->free_lock);
	if (shared->nfree >= n)
	{
		shared->nfree -= n;
		memcpy(out, free_stack + shared->nfree, n * sizeof(BlockNo));
		ok = true;
	}
	SpinLockRelease(&shared->free_lock);

	/* the free stack hands out low numbers first: key_heads scans stop early */
	for (uint32 i = 0; ok && i < n; i++)
		top = Max(top, out[i] + 1);
	hw = pg_atomic_read_u32(&shared->high_water);
	while (top > hw && !pg_atomic_compare_exchange_u32(&shared->high_water, &hw, top))
		;
	return ok;
}

/*
 * Return unlinked chains to the free stack.  Called with no partition lock
 * held: once they have left the index no other backend writes the chains
 * (a get without the lock may still be reading one; it will find out).
 */
static void
free_chains(const BlockNo *heads, int nheads)
{
	for (int i = 0; i < nheads; i++)
	{
		uint32		n = entry_blocks(ENTRY(heads[i]));
		BlockNo		tmp[64];
		BlockNo		b = heads[i];

		while (n > 0)
		{
			uint32		k = 0;

			while (k < lengthof(tmp) && b != InvalidBlock)
			{
				tmp[k++] = b;
				b = blocks[b].next;
			}
			SpinLockAcquire(&shared->free_lock);
			memcpy(free_stack + shared->nfree, tmp, k * sizeof(BlockNo));
			shared->nfree += k;
			SpinLockRelease(&shared->free_lock);
			n -= k;
		}
	}
}

/*
 * The block after blk in its chain; false if the link leads out of the
 * arena, which only a reader without the lock can meet (the chain was freed
 * and reused under it).  Read once: it may be changing.
 */
static inline bool
next_block(CacheBlock **blk)
{
	BlockNo		next = *(volatile BlockNo *) &(*blk)->next;

	if (next >= shared->nblocks)
		return false;
	*blk = &blocks[next];
	return true;
}

/*
 * Copy len bytes at offset off of an entry's key+value stream; false if
 * the chain broke off (see next_block).
 */
static bool
chain_read(CacheEntry *e, Size off, char *dst, Size len)
{
	CacheBlock *blk = (CacheBlock *) e;
	char	   *src = e->data;
	Size		avail = HEAD_PAYLOAD;

	while (off >= avail)
	{
		off -= avail;
		if (!next_block(&blk))
			return false;
		src = blk->data;
		avail = CONT_PAYLOAD;
	}
	src += off;
	avail -= off;
	for (;;)
	{
		Size		n = Min(len, avail);

		memcpy(dst, src, n);
		dst += n;
		len -= n;
		if (len == 0)
			return true;
		if (!next_block(&blk))
			return false;
		src = blk->data;
		avail = CONT_PAYLOAD;
	}
}

/* Fill a fresh chain with key then value. */
static void
chain_write(BlockNo *chain, uint32 n, const char *key, int keylen,
			const char *val, Size vallen)
{
	CacheEntry *e = ENTRY(chain[0]);
	char	   *dst = e->data;
	Size		avail = HEAD_PAYLOAD;
	uint32		i = 0;
	const char *src = key;
	Size		left = keylen;
	bool		in_key = true;

	for (uint32 j = 0; j < n; j++)
		blocks[chain[j]].next = (j + 1 < n) ? chain[j + 1] : InvalidBlock;

	for (;;)
	{
		Size		k = Min(left, avail);

		memcpy(dst, src, k);
		dst += k;
		avail -= k;
		left -= k;
		if (left == 0)
		{
			if (!in_key || vallen == 0)
				break;
			in_key = false;
			src = val;
			left = vallen;
			continue;
		}
		src += k;
		if (avail == 0)
		{
			dst = blocks[chain[++i]].data;
			avail = CONT_PAYLOAD;
		}
	}
}

/*
 * The database whose namespace key lookups use: this session's, or while
 * cache_shmem_invalidate_in() runs (WAL replay, no database of its own),
 * the replayed record's.
 */
static Oid	replay_dbid = InvalidOid;

#define KEY_DBID() (OidIsValid(replay_dbid) ? replay_dbid : MyDatabaseId)

static bool
key_equals(CacheEntry *e, uint32 hash, const char *key, int keylen)
{
	char		buf[CACHE_MAX_KEY_LEN];

	if (e->hash != hash || e->keylen != keylen || e->dbid != KEY_DBID())
		return false;
	if (keylen <= HEAD_PAYLOAD)
		return memcmp(e->data, key, keylen) == 0;
	return chain_read(e, 0, buf, keylen) && memcmp(buf, key, keylen) == 0;
}

/* ---- index and queue, partition lock held ---- */

/*
 * Exclusive access to a partition, for any change to its index: the
 * sequence number is odd meanwhile, which tells readers without the lock
 * (read_unlocked) that what they read may be torn.
 */
static inline void
part_lock(int part)
{
	pg_atomic_uint32 *seq = &shared->parts[part].seq;

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
	pg_atomic_uint32 *seq = &shared->parts[part].seq;

	Assert(pg_atomic_read_u32(seq) & 1);
	pg_write_barrier();
	pg_atomic_write_u32(seq, pg_atomic_read_u32(seq) + 1);
	LWLockRelease(PART_LOCK(part));
}

static inline uint32
key_hash(const char *key, int keylen)
{
	return hash_combine(hash_bytes((const unsigned char *) key, keylen),
						KEY_DBID());
}

/*
 * The time for expiry checks on the read path: the coarse clock costs a
 * fraction of gettimeofday() and is at most a few milliseconds behind,
 * which only lets an entry live that much past a TTL counted in seconds.
 */
static inline TimestampTz
coarse_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return ((TimestampTz) ts.tv_sec -
			((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) *
		USECS_PER_SEC + ts.tv_nsec / 1000;
}

static BlockNo
lookup(int part, uint32 hash, const char *key, int keylen)
{
	BlockNo		b = *BUCKET(part, hash);

	while (b != InvalidBlock && !key_equals(ENTRY(b), hash, key, keylen))
		b = ENTRY(b)->hnext;
	return b;
}

/*
 * lookup() without the lock: a block number read may be stale, so each one
 * is checked before use and the walk is bounded (a stale link can make a
 * cycle).  False if it gave up; the caller's sequence check then tells.
 */
static bool
lookup_unlocked(int part, uint32 hash, const char *key, int keylen,
				BlockNo *found)
{
	BlockNo		b = *(volatile BlockNo *) BUCKET(part, hash);

	for (int steps = 0; b != InvalidBlock; steps++)
	{
		if (b >= shared->nblocks || steps > MAX_UNLOCKED_STEPS)
			return false;
		if (key_equals(ENTRY(b), hash, key, keylen))
			break;
		b = *(volatile BlockNo *) &ENTRY(b)->hnext;
	}
	*found = b;
	return true;
}

static inline bool
is_expired(CacheEntry *e, TimestampTz now)
{
	return e->expires != 0 && e->expires <= now;
}

/* The usage slot of a database, claimed on first use. */
static DbUsage *
db_usage(Oid dbid)
{
	static DbUsage *mine = NULL;
	DbUsage    *found = NULL;

	if (dbid == MyDatabaseId && mine != NULL)
		return mine;
	for (int i = 0; i < MAX_DB_SLOTS && !found; i++)
		if (pg_atomic_read_u32(&shared->dbs[i].dbid) == dbid)
			found = &shared->dbs[i];
	for (int i = 0; i < MAX_DB_SLOTS && !found; i++)
	{
		uint32		cur = InvalidOid;

		/* a failed claim leaves the slot's owner in cur: maybe us */
		if (pg_atomic_compare_exchange_u32(&shared->dbs[i].dbid, &cur, dbid) ||
			cur == dbid)
			found = &shared->dbs[i];
	}
	if (!found)
		return &shared->other_dbs;
	if (dbid == MyDatabaseId)
		mine = found;
	return found;
}

static void
account(CacheEntry *e, int sign)
{
	DbUsage    *u = db_usage(e->dbid);

	pg_atomic_fetch_add_u64(&u->entries, sign);
	pg_atomic_fetch_add_u64(&u->blocks, sign * (int64) entry_blocks(e));
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

/* Link a filled entry in as the newest of its partition (exclusive lock). */
static void
link_entry(int part, BlockNo b)
{
	CachePartition *p = &shared->parts[part];
	CacheEntry *e = ENTRY(b);
	BlockNo    *bucket = BUCKET(part, e->hash);

	e->hnext = *bucket;
	*bucket = b;
	e->newer = InvalidBlock;
	e->older = p->newest;
	if (p->newest != InvalidBlock)
		ENTRY(p->newest)->newer = b;
	else
		p->oldest = b;
	p->newest = b;
	p->nentries++;
	p->links++;
	key_heads[b] = head_of(e->data, e->keylen);
	visited[b] = 0;
	account(e, 1);
}

/* Take an entry out of the index and the queue (exclusive lock). */
static void
unlink_entry(int part, BlockNo b)
{
	CachePartition *p = &shared->parts[part];
	CacheEntry *e = ENTRY(b);
	BlockNo    *link = BUCKET(part, e->hash);

	while (*link != b)
		link = &ENTRY(*link)->hnext;
	*link = e->hnext;

	if (p->hand == b)
		p->hand = e->newer;
	if (e->newer != InvalidBlock)
		ENTRY(e->newer)->older = e->older;
	else
		p->newest = e->older;
	if (e->older != InvalidBlock)
		ENTRY(e->older)->newer = e->newer;
	else
		p->oldest = e->newer;
	p->nentries--;
	key_heads[b] = 0;
	account(e, -1);
}

/* ---- eviction ---- */

#define MAX_VICTIMS 64

/*
 * Run the SIEVE hand of one partition until "want" blocks are freed, the
 * victim array is full or every entry has been looked at once more than
 * the partition holds (after which all flags are clear, so it always
 * finds a victim when the partition is not empty).
 */
static int
sieve_evict(int part, uint32 want, BlockNo *victims, uint32 *freed,
			int64 *nexpired)
{
	CachePartition *p = &shared->parts[part];
	TimestampTz now = GetCurrentTimestamp();
	uint32		budget = p->nentries + 1;
	int			nvictims = 0;
	BlockNo		b = (p->hand != InvalidBlock) ? p->hand : p->oldest;

	while (b != InvalidBlock && *freed < want && nvictims < MAX_VICTIMS &&
		   budget-- > 0)
	{
		CacheEntry *e = ENTRY(b);
		BlockNo		next = (e->newer != InvalidBlock) ? e->newer : p->oldest;

		if (visited[b] && !is_expired(e, now))
		{
			visited[b] = 0;
			b = next;
			continue;
		}
		if (is_expired(e, now))
			(*nexpired)++;
		unlink_entry(part, b);
		*freed += entry_blocks(e);
		victims[nvictims++] = b;
		b = (p->nentries > 0) ? ((next != b) ? next : p->oldest) : InvalidBlock;
	}
	p->hand = b;
	return nvictims;
}

/* Free at least "want" blocks by evicting from partitions in turn. */
static void
evict(uint32 want)
{
	uint32		freed = 0;
	int64		nevicted = 0;
	int64		nexpired = 0;

	for (int tries = 0; tries < 2 * CACHE_PARTITIONS && freed < want; tries++)
	{
		int			part = pg_atomic_fetch_add_u32(&shared->evict_cursor, 1) % CACHE_PARTITIONS;
		BlockNo		victims[MAX_VICTIMS];
		int			n;

		if (shared->parts[part].nentries == 0)
			continue;
		part_lock(part);
		n = sieve_evict(part, want, victims, &freed, &nexpired);
		part_unlock(part);
		free_chains(victims, n);
		nevicted += n;
	}
	cache_stat_add(CACHE_BACKEND_SHMEM, CACHE_STAT_EVICTIONS, nevicted - nexpired);
	cache_stat_add(CACHE_BACKEND_SHMEM, CACHE_STAT_EXPIRATIONS, nexpired);
}

static bool
alloc_chain(uint32 n, BlockNo *chain)
{
	/* evict a little ahead so that every set does not have to */
	uint32		slack = Min(32, shared->nblocks / 64);

	/*
	 * Concurrent setters may take the blocks just freed: try again, a bounded
	 * number of times (a full store must not make a set fail, short of a
	 * value that no amount of eviction makes room for).
	 */
	for (int round = 0; round < 32; round++)
	{
		if (pop_blocks(n, chain))
			return true;
		evict(n + slack);
	}
	return false;
}

/* ---- the store operations ---- */

/*
 * An entry found expired by a reader: remove it if it is still there and
 * still expired (another backend may have replaced it meanwhile).
 */
static void
reclaim_expired(int part, uint32 hash, const char *key, int keylen)
{
	BlockNo		b;
	bool		removed = false;

	part_lock(part);
	b = lookup(part, hash, key, keylen);
	if (b != InvalidBlock && is_expired(ENTRY(b), GetCurrentTimestamp()))
	{
		unlink_entry(part, b);
		removed = true;
	}
	part_unlock(part);
	if (removed)
	{
		free_chains(&b, 1);
		cache_stat_add(CACHE_BACKEND_SHMEM, CACHE_STAT_EXPIRATIONS, 1);
	}
}

typedef enum ReadResult
{
	READ_HIT,
	READ_MISS,
	READ_EXPIRED,
	READ_RACED					/* a writer got in the way: try again */
} ReadResult;

/*
 * A get without the lock (a seqlock read).  What it reads counts only if
 * the partition's sequence number was even before the first read and is
 * the same after the last.  Until that check any block number or length
 * read may be stale, so block numbers are checked before use and the
 * value's length is trusted (to allocate) only once a first check has
 * vouched for the entry header.
 */
static ReadResult
read_unlocked(int part, uint32 hash, const char *key, int keylen,
			  text **result)
{
	pg_atomic_uint32 *seq = &shared->parts[part].seq;
	uint32		s = pg_atomic_read_u32(seq);
	BlockNo		b;
	CacheEntry *e = NULL;
	uint32		vallen = 0;
	TimestampTz expires = 0;
	BlockNo		next = InvalidBlock;
	text	   *t;
	bool		ok;

	if (s & 1)
		return READ_RACED;
	pg_read_barrier();
	if (!lookup_unlocked(part, hash, key, keylen, &b))
		return READ_RACED;
	if (b != InvalidBlock)
	{
		e = ENTRY(b);
		vallen = *(volatile uint32 *) &e->vallen;
		expires = *(volatile TimestampTz *) &e->expires;
		next = *(volatile BlockNo *) &e->next;
	}
	pg_read_barrier();
	if (pg_atomic_read_u32(seq) != s)
		return READ_RACED;
	if (b == InvalidBlock)
		return READ_MISS;
	if (expires != 0 && expires <= coarse_now())
		return READ_EXPIRED;

	/* the value's next block is usually a cache miss: start it now */
	if (next < shared->nblocks)
		prefetch(&blocks[next]);
	t = (text *) palloc(VARHDRSZ + vallen);
	SET_VARSIZE(t, VARHDRSZ + vallen);
	ok = (vallen == 0 || chain_read(e, keylen, VARDATA(t), vallen));
	pg_read_barrier();
	if (!ok || pg_atomic_read_u32(seq) != s)
	{
		pfree(t);
		return READ_RACED;
	}
	/* b may have been reused since: then a wrong flag is set, no harm */
	if (!visited[b])
		visited[b] = 1;
	*result = t;
	return READ_HIT;
}

/*
 * Spin, a bounded while, until no writer is inside the partition.  A writer
 * stays there a microsecond (a set) to a tenth of a millisecond (a batch of
 * a bulk removal); sleeping on the lock instead costs a wake-up, which on a
 * busy virtual machine was measured to take over a millisecond.
 */
static void
wait_for_writer(int part)
{
	pg_atomic_uint32 *seq = &shared->parts[part].seq;

	for (int i = 0; i < MAX_WRITER_SPINS && (pg_atomic_read_u32(seq) & 1); i++)
		pg_spin_delay();
}

static text *
shmem_get(const char *key, int keylen)
{
	uint32		hash;
	int			part;
	BlockNo		b;
	text	   *result = NULL;
	bool		expired = false;

	require_shmem();
	hash = key_hash(key, keylen);
	part = hash % CACHE_PARTITIONS;

	for (int i = 0; i < UNLOCKED_TRIES; i++)
	{
		switch (read_unlocked(part, hash, key, keylen, &result))
		{
			case READ_HIT:
				return result;
			case READ_MISS:
				return NULL;
			case READ_EXPIRED:
				reclaim_expired(part, hash, key, keylen);
				return NULL;
			case READ_RACED:
				wait_for_writer(part);
				break;
		}
	}

	/* writers keep getting in the way: wait for them on the lock */
	LWLockAcquire(PART_LOCK(part), LW_SHARED);
	b = lookup(part, hash, key, keylen);
	if (b != InvalidBlock)
	{
		CacheEntry *e = ENTRY(b);

		if (is_expired(e, coarse_now()))
			expired = true;
		else
		{
			result = (text *) palloc(VARHDRSZ + e->vallen);
			SET_VARSIZE(result, VARHDRSZ + e->vallen);
			if (e->vallen > 0)
				(void) chain_read(e, e->keylen, VARDATA(result), e->vallen);
			if (!visited[b])
				visited[b] = 1;
		}
	}
	LWLockRelease(PART_LOCK(part));

	if (expired)
		reclaim_expired(part, hash, key, keylen);
	return result;
}

static void
shmem_get_many(int nkeys, const char *const *keys, const int *keylens,
			   text **values)
{
	for (int i = 0; i < nkeys; i++)
		values[i] = shmem_get(keys[i], keylens[i]);
}

static bool shmem_del(const char *key, int keylen);

static bool
shmem_set(const char *key, int keylen, const char *val, Size vallen, int ttl)
{
	uint32		hash;
	int			part;
	uint32		n;
	BlockNo		local[16];
	BlockNo    *chain;
	CacheEntry *e;
	BlockNo		old;

	require_shmem();
	n = blocks_for((Size) keylen + vallen);
	chain = (n <= lengthof(local)) ? local : palloc(n * sizeof(BlockNo));

	/*
	 * One value may not take more than half the store.  When a value cannot
	 * be stored, the one it was meant to replace must not stay.
	 */
	if (n > shared->nblocks / 2 || !alloc_chain(n, chain))
	{
		if (chain != local)
			pfree(chain);
		shmem_del(key, keylen);
		return false;
	}

	hash = key_hash(key, keylen);
	part = hash % CACHE_PARTITIONS;
	e = ENTRY(chain[0]);
	e->hash = hash;
	e->dbid = MyDatabaseId;
	e->keylen = keylen;
	e->vallen = vallen;
	e->expires = (ttl > 0) ?
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), (int64) ttl * 1000) : 0;
	chain_write(chain, n, key, keylen, val, vallen);

	part_lock(part);
	old = lookup(part, hash, key, keylen);
	if (old != InvalidBlock)
		unlink_entry(part, old);
	link_entry(part, chain[0]);
	part_unlock(part);

	if (old != InvalidBlock)
		free_chains(&old, 1);
	if (chain != local)
		pfree(chain);
	return true;
}

static bool
shmem_del(const char *key, int keylen)
{
	uint32		hash;
	int			part;
	BlockNo		b;
	bool		live = false;

	require_shmem();
	hash = key_hash(key, keylen);
	part = hash % CACHE_PARTITIONS;

	part_lock(part);
	b = lookup(part, hash, key, keylen);
	if (b != InvalidBlock)
	{
		live = !is_expired(ENTRY(b), GetCurrentTimestamp());
		unlink_entry(part, b);
	}
	part_unlock(part);

	if (b != InvalidBlock)
	{
		free_chains(&b, 1);
		if (!live)
			cache_stat_add(CACHE_BACKEND_SHMEM, CACHE_STAT_EXPIRATIONS, 1);
	}
	return live;
}

static int32
shmem_ttl(const char *key, int keylen, bool *found)
{
	uint32		hash;
	int			part;
	BlockNo		b;
	TimestampTz expires = 0;
	TimestampTz now = GetCurrentTimestamp();

	require_shmem();
	hash = key_hash(key, keylen);
	part = hash % CACHE_PARTITIONS;

	*found = false;
	LWLockAcquire(PART_LOCK(part), LW_SHARED);
	b = lookup(part, hash, key, keylen);
	if (b != InvalidBlock && !is_expired(ENTRY(b), now))
	{
		*found = true;
		expires = ENTRY(b)->expires;
	}
	LWLockRelease(PART_LOCK(part));

	if (!*found)
		return 0;
	if (expires == 0)
		return -1;
	/* round to the nearest second, as Redis's TTL does */
	return (int32) ((expires - now + 500000) / 1000000);
}

/* ---- bulk invalidation ---- */

typedef enum MatchKind
{
	MATCH_DATABASE,				/* every entry of the database "dbid" */
	MATCH_ALL,
	MATCH_PREFIX,
	MATCH_PATTERN
} MatchKind;

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
			(void) chain_read(e, 0, buf, arglen);
			key = buf;
		}
		return memcmp(key, arg, arglen) == 0;
	}
	if (e->keylen > HEAD_PAYLOAD)
	{
		(void) chain_read(e, 0, buf, e->keylen);
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
	free_chains(br->victims, br->nvictims);
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
	unlink_entry(part, b);
	br->victims[br->nvictims++] = b;
}

/* Visit every entry, bucket by bucket. */
static void
walk_buckets(BulkRemoval *br)
{
	for (int part = 0; part < CACHE_PARTITIONS; part++)
	{
		uint32		i = 0;

		while (i < shared->nbuckets && shared->parts[part].nentries > 0)
		{
			uint32		last = Min(i + SCAN_CHUNK_BUCKETS, shared->nbuckets);

			bulk_lock(br, part);
			for (; i < last && br->nvictims < MAX_BULK_VICTIMS; i++)
			{
				BlockNo		b = buckets[(Size) part * shared->nbuckets + i];

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

/* Is b, read without a lock as a candidate, a linked entry of part? */
static bool
still_linked(int part, BlockNo b)
{
	BlockNo		cur = *BUCKET(part, ENTRY(b)->hash);

	while (cur != InvalidBlock && cur != b)
		cur = ENTRY(cur)->hnext;
	return cur == b;
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

	uint32		end = pg_atomic_read_u32(&shared->high_water);

	memset(&mask, 0xFF, n);
	for (uint32 first = 0; first < end;)
	{
		int			ncand = 0;

		for (; first < end && ncand < maxc; first++)
		{
			uint64		h = ((volatile uint64 *) key_heads)[first];

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
				if (still_linked(part, cand[i].block))
					bulk_consider(br, part, cand[i].block);
			bulk_unlock(br, part);
		}
	}
	pfree(found);
	pfree(cand);
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
static int64
remove_matching(MatchKind kind, Oid dbid, const char *arg, int arglen)
{
	BulkRemoval *br;
	int64		removed;
	int			litlen = 0;

	require_shmem();
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
		walk_heads(br, arg, litlen);
	else
		walk_buckets(br);

	cache_stat_add(CACHE_BACKEND_SHMEM, CACHE_STAT_EXPIRATIONS, br->expired);
	elog(DEBUG2, "cache_ext: longest partition lock hold during bulk removal: %.3f ms",
		 br->longest_ms);
	removed = br->removed;
	pfree(br);
	return removed;
}

static int64
shmem_invalidate_prefix(const char *prefix, int len)
{
	return remove_matching(MATCH_PREFIX, MyDatabaseId, prefix, len);
}

static int64
shmem_invalidate_pattern(const char *pattern, int len)
{
	return remove_matching(MATCH_PATTERN, MyDatabaseId, pattern, len);
}

static int64
shmem_flush(void)
{
	return remove_matching(MATCH_ALL, MyDatabaseId, NULL, 0);
}

/*
 * An invalidation of database dbid's namespace, for the replay of WAL
 * invalidations (coherence_wal.c) in the startup process, which has no
 * database.  Returns the live keys removed.
 */
int64
cache_shmem_invalidate_in(Oid dbid, CacheOpKind kind, const char *arg, int len)
{
	int64		removed = 0;

	if (shared == NULL || !OidIsValid(dbid))
		return 0;
	switch (kind)
	{
		case CACHE_OP_KEY:
			replay_dbid = dbid;
			PG_TRY();
			{
				removed = shmem_del(arg, len) ? 1 : 0;
			}
			PG_FINALLY();
			{
				replay_dbid = InvalidOid;
			}
			PG_END_TRY();
			break;
		case CACHE_OP_PREFIX:
			removed = remove_matching(MATCH_PREFIX, dbid, arg, len);
			break;
		case CACHE_OP_PATTERN:
			removed = remove_matching(MATCH_PATTERN, dbid, arg, len);
			break;
		case CACHE_OP_ALL:
			removed = remove_matching(MATCH_ALL, dbid, NULL, 0);
			break;
		default:
			break;
	}
	return removed;
}

/*
 * A database is being dropped: remove its entries, so that a database that
 * later gets the same OID does not see them, and free its usage slot.
 */
void
cache_shmem_forget_database(Oid dbid)
{
	int64		n;

	if (shared == NULL)
		return;
	n = remove_matching(MATCH_DATABASE, dbid, NULL, 0);
	elog(DEBUG1, "cache_ext: removed " INT64_FORMAT " keys of dropped database %u",
		 n, dbid);
	for (int i = 0; i < MAX_DB_SLOTS; i++)
	{
		if (pg_atomic_read_u32(&shared->dbs[i].dbid) == dbid &&
			pg_atomic_read_u64(&shared->dbs[i].entries) == 0)
		{
			pg_atomic_write_u64(&shared->dbs[i].blocks, 0);
			pg_atomic_write_u32(&shared->dbs[i].dbid, InvalidOid);
		}
	}
}

/* This database's entries and the blocks they hold; the whole arena. */
static void
shmem_size(CacheStoreSize *out)
{
	DbUsage    *u;

	require_shmem();
	u = db_usage(MyDatabaseId);
	out->entries = (int64) pg_atomic_read_u64(&u->entries);
	out->bytes_used = (int64) pg_atomic_read_u64(&u->blocks) * CACHE_BLOCK_SIZE;
	out->bytes_max = (int64) arena_bytes();
}

/*
 * Unlocked reads: a link racing with this is no different from one made
 * just after it, which the caller's lease check covers.
 */
static uint64
shmem_generation(void)
{
	uint64		sum = 0;

	require_shmem();
	for (int i = 0; i < CACHE_PARTITIONS; i++)
		sum += ((volatile CachePartition *) &shared->parts[i])->links;
	return sum;
}

const CacheStore cache_shmem_store = {
	.id = CACHE_BACKEND_SHMEM,
	.name = "shmem",
	.get = shmem_get,
	.get_many = shmem_get_many,
	.set = shmem_set,
	.del = shmem_del,
	.invalidate_prefix = shmem_invalidate_prefix,
	.invalidate_pattern = shmem_invalidate_pattern,
	.ttl = shmem_ttl,
	.flush = shmem_flush,
	.size = shmem_size,
	.generation = shmem_generation,
};
