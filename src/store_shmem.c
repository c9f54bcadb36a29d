/*-------------------------------------------------------------------------
 *
 * store_shmem.c
 *		The shared-memory store: a fixed arena of blocks, a partitioned
 *		hash index and CLOCK eviction.
 *
 * Memory model.  cache_ext.shmem_size is carved, once, into
 *   - a header: CACHE_PARTITIONS partitions (sequence numbers, counters),
 *     the CLOCK hand, usage by database and the head counts,
 *   - the hash buckets (one per two blocks, split evenly by partition),
 *   - a stack of free block numbers,
 *   - per block, a key head (the first 8 bytes of an entry's key, for
 *     prefix invalidation) and a visited flag (for eviction),
 *   - the blocks: CACHE_BLOCK_SIZE bytes each.
 * An entry is a chain of blocks.  The first one holds the entry header, then
 * key and value bytes continue through the chain.  Any value size works
 * without fragmentation, and nothing is allocated at run time.
 *
 * Concurrency.  A key's hash picks its partition; each partition has its
 * own LWLock and hash buckets.  Every change to a partition's index is
 * made under its lock held exclusively, which also makes the
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
 * problem.  Bulk invalidation (store_shmem_bulk.c) holds no lock for more
 * than a batch, however large the store is.
 *
 * Eviction (store_shmem_evict.c).  When the free stack runs dry, a setter
 * evicts with CLOCK over the whole arena: one global hand walks the block
 * numbers in order; at an entry's first block it clears the entry's
 * "visited" flag if set (a hit since the hand last passed) and evicts the
 * entry otherwise (or when it is expired).  Setters claim a few blocks of
 * the hand's path at a time with one atomic add, so concurrent setters
 * evict side by side and take only the partition lock of each victim.  A
 * new entry's first block is the one of its chain the hand reaches last,
 * so that it gets a whole turn.  See docs/eviction.md.
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

#include "store_shmem_int.h"

#define CACHE_TRANCHE		"cache_ext"

/*
 * Tries of a get without the lock before it takes the lock, pauses it may
 * spin between tries while a writer is inside the partition (about 0.1 to
 * 0.5 ms in all), and entries a hash chain may have before a try gives up
 * (chains hold about two).
 */
#define UNLOCKED_TRIES		3
#define MAX_WRITER_SPINS	5000
#define MAX_UNLOCKED_STEPS	1000

/* pointers into the arena, set in every backend at attach */
CacheShared *shm_shared = NULL;
LWLockPadded *shm_locks = NULL;
BlockNo *shm_buckets = NULL;
BlockNo *shm_free_stack = NULL;
uint64 *shm_key_heads = NULL;	/* per block: head_of() its key, or 0 */
uint8 *shm_visited = NULL;	/* per block: CLOCK's flag for its entry */
CacheBlock *shm_blocks = NULL;

#if defined(__GNUC__) || defined(__clang__)
#define prefetch(p)		__builtin_prefetch(p)
#else
#define prefetch(p)		((void) 0)
#endif

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
	shm_shared = (CacheShared *) p;
	shm_locks = GetNamedLWLockTranche(CACHE_TRANCHE);
	p += MAXALIGN(sizeof(CacheShared));
	shm_buckets = (BlockNo *) p;
	p += MAXALIGN((Size) nbuckets * CACHE_PARTITIONS * sizeof(BlockNo));
	shm_free_stack = (BlockNo *) p;
	p += MAXALIGN((Size) nblocks * sizeof(BlockNo));
	shm_key_heads = (uint64 *) p;
	p += (Size) nblocks * sizeof(uint64);
	shm_visited = (uint8 *) p;
	p += nblocks;
	shm_blocks = (CacheBlock *) TYPEALIGN(PG_CACHE_LINE_SIZE, p);

	if (!found)
	{
		shm_shared->nblocks = nblocks;
		shm_shared->nbuckets = nbuckets;
		SpinLockInit(&shm_shared->free_lock);
		pg_atomic_init_u64(&shm_shared->hand, 0);
		pg_atomic_init_u32(&shm_shared->high_water, 0);
		for (int i = 0; i <= MAX_DB_SLOTS; i++)
		{
			DbUsage    *u = (i < MAX_DB_SLOTS) ? &shm_shared->dbs[i] : &shm_shared->other_dbs;

			pg_atomic_init_u32(&u->dbid, InvalidOid);
			pg_atomic_init_u64(&u->entries, 0);
			pg_atomic_init_u64(&u->blocks, 0);
		}
		for (int l = 0; l < HEAD_COUNT_LENS; l++)
			for (int i = 0; i < HEAD_COUNT_SLOTS; i++)
				pg_atomic_init_u32(&shm_shared->head_counts[l][i], 0);
		for (int i = 0; i < CACHE_PARTITIONS; i++)
		{
			pg_atomic_init_u32(&shm_shared->parts[i].seq, 0);
			shm_shared->parts[i].nentries = 0;
			shm_shared->parts[i].links = 0;
		}
		memset(shm_buckets, 0xFF, (Size) nbuckets * CACHE_PARTITIONS * sizeof(BlockNo));
		memset(shm_key_heads, 0, (Size) nblocks * sizeof(uint64));
		memset(shm_visited, 0, nblocks);
		/* pop from the top; hand out low block numbers first */
		for (uint32 i = 0; i < nblocks; i++)
			shm_free_stack[i] = nblocks - 1 - i;
		shm_shared->nfree = nblocks;
	}

	Assert((char *) (shm_blocks + nblocks) <= (char *) shm_shared + cache_shmem_size());
}

void
shm_require(void)
{
	if (shm_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cache_ext's shared-memory store needs shared_preload_libraries = 'cache_ext' in postgresql.conf"),
				 errhint("Add the line, then restart the server; or SET cache_ext.backend = 'redis'.")));
}

/* ---- blocks ---- */



/* Take n blocks from the free stack, all or none. */
static bool
pop_blocks(uint32 n, BlockNo *out)
{
	bool		ok = false;

	uint32		top = 0;
	uint32		hw;

	SpinLockAcquire(&shm_shared->free_lock);
	if (shm_shared->nfree >= n)
	{
		shm_shared->nfree -= n;
		memcpy(out, shm_free_stack + shm_shared->nfree, n * sizeof(BlockNo));
		ok = true;
	}
	SpinLockRelease(&shm_shared->free_lock);

	/* the free stack hands out low numbers first: key_heads scans stop early */
	for (uint32 i = 0; ok && i < n; i++)
		top = Max(top, out[i] + 1);
	hw = pg_atomic_read_u32(&shm_shared->high_water);
	while (top > hw && !pg_atomic_compare_exchange_u32(&shm_shared->high_water, &hw, top))
		;
	return ok;
}

/*
 * Return unlinked chains to the free stack.  Called with no partition lock
 * held: once they have left the index no other backend writes the chains
 * (a get without the lock may still be reading one; it will find out).
 */
void
shm_free_chains(const BlockNo *heads, int nheads)
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
				b = shm_blocks[b].next;
			}
			SpinLockAcquire(&shm_shared->free_lock);
			memcpy(shm_free_stack + shm_shared->nfree, tmp, k * sizeof(BlockNo));
			shm_shared->nfree += k;
			SpinLockRelease(&shm_shared->free_lock);
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

	if (next >= shm_shared->nblocks)
		return false;
	*blk = &shm_blocks[next];
	return true;
}

/*
 * Copy len bytes at offset off of an entry's key+value stream; false if
 * the chain broke off (see next_block).
 */
bool
shm_chain_read(CacheEntry *e, Size off, char *dst, Size len)
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
		shm_blocks[chain[j]].next = (j + 1 < n) ? chain[j + 1] : InvalidBlock;

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
			dst = shm_blocks[chain[++i]].data;
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
	return shm_chain_read(e, 0, buf, keylen) && memcmp(buf, key, keylen) == 0;
}

/* ---- the index, partition lock held ---- */



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
		if (b >= shm_shared->nblocks || steps > MAX_UNLOCKED_STEPS)
			return false;
		if (key_equals(ENTRY(b), hash, key, keylen))
			break;
		b = *(volatile BlockNo *) &ENTRY(b)->hnext;
	}
	*found = b;
	return true;
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
		if (pg_atomic_read_u32(&shm_shared->dbs[i].dbid) == dbid)
			found = &shm_shared->dbs[i];
	for (int i = 0; i < MAX_DB_SLOTS && !found; i++)
	{
		uint32		cur = InvalidOid;

		/* a failed claim leaves the slot's owner in cur: maybe us */
		if (pg_atomic_compare_exchange_u32(&shm_shared->dbs[i].dbid, &cur, dbid) ||
			cur == dbid)
			found = &shm_shared->dbs[i];
	}
	if (!found)
		return &shm_shared->other_dbs;
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



static inline void
count_head(uint64 head, Oid dbid, int sign)
{
	for (int l = 0; l < HEAD_COUNT_LENS; l++)
		pg_atomic_fetch_add_u32(head_count(l, head, dbid), sign);
}

/* Link a filled entry into its partition's index (exclusive lock). */
static void
link_entry(int part, BlockNo b)
{
	CachePartition *p = &shm_shared->parts[part];
	CacheEntry *e = ENTRY(b);
	BlockNo    *bucket = BUCKET(part, e->hash);

	e->hnext = *bucket;
	*bucket = b;
	p->nentries++;
	p->links++;
	shm_key_heads[b] = head_of(e->data, e->keylen);
	count_head(shm_key_heads[b], e->dbid, 1);
	shm_visited[b] = 0;
	account(e, 1);
}

/* Take an entry out of the index (exclusive lock). */
void
shm_unlink_entry(int part, BlockNo b)
{
	CachePartition *p = &shm_shared->parts[part];
	CacheEntry *e = ENTRY(b);
	BlockNo    *link = BUCKET(part, e->hash);

	while (*link != b)
		link = &ENTRY(*link)->hnext;
	*link = e->hnext;
	p->nentries--;
	count_head(shm_key_heads[b], e->dbid, -1);
	shm_key_heads[b] = 0;
	account(e, -1);
}

static bool
alloc_chain(uint32 n, BlockNo *chain)
{
	/* evict a little ahead so that every set does not have to */
	uint32		slack = Min(32, shm_shared->nblocks / 64);

	/*
	 * Concurrent setters may take the blocks just freed: try again, a bounded
	 * number of times (a full store must not make a set fail, short of a
	 * value that no amount of eviction makes room for).
	 */
	for (int round = 0; round < 32; round++)
	{
		if (pop_blocks(n, chain))
		{
			shm_place_head(chain, n);
			return true;
		}
		shm_evict(n + slack);
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
		shm_unlink_entry(part, b);
		removed = true;
	}
	part_unlock(part);
	if (removed)
	{
		shm_free_chains(&b, 1);
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
	pg_atomic_uint32 *seq = &shm_shared->parts[part].seq;
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
	if (next < shm_shared->nblocks)
		prefetch(&shm_blocks[next]);
	t = (text *) palloc(VARHDRSZ + vallen);
	SET_VARSIZE(t, VARHDRSZ + vallen);
	ok = (vallen == 0 || shm_chain_read(e, keylen, VARDATA(t), vallen));
	pg_read_barrier();
	if (!ok || pg_atomic_read_u32(seq) != s)
	{
		pfree(t);
		return READ_RACED;
	}
	/* b may have been reused since: then a wrong flag is set, no harm */
	if (!shm_visited[b])
		shm_visited[b] = 1;
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
	pg_atomic_uint32 *seq = &shm_shared->parts[part].seq;

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

	shm_require();
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
				(void) shm_chain_read(e, e->keylen, VARDATA(result), e->vallen);
			if (!shm_visited[b])
				shm_visited[b] = 1;
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

	shm_require();
	n = blocks_for((Size) keylen + vallen);
	chain = (n <= lengthof(local)) ? local : palloc(n * sizeof(BlockNo));

	/*
	 * One value may not take more than half the store.  When a value cannot
	 * be stored, the one it was meant to replace must not stay.
	 */
	if (n > shm_shared->nblocks / 2 || !alloc_chain(n, chain))
	{
		if (n > shm_shared->nblocks / 2)
			cache_stat_add(CACHE_BACKEND_SHMEM, CACHE_STAT_SETS_TOO_LARGE, 1);
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
		shm_unlink_entry(part, old);
	link_entry(part, chain[0]);
	part_unlock(part);

	if (old != InvalidBlock)
		shm_free_chains(&old, 1);
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

	shm_require();
	hash = key_hash(key, keylen);
	part = hash % CACHE_PARTITIONS;

	part_lock(part);
	b = lookup(part, hash, key, keylen);
	if (b != InvalidBlock)
	{
		live = !is_expired(ENTRY(b), GetCurrentTimestamp());
		shm_unlink_entry(part, b);
	}
	part_unlock(part);

	if (b != InvalidBlock)
	{
		shm_free_chains(&b, 1);
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

	shm_require();
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

/*
 * An invalidation of database dbid's namespace, for the replay of WAL
 * invalidations (coherence_wal.c) in the startup process, which has no
 * database.  Returns the live keys removed.
 */
int64
cache_shmem_invalidate_in(Oid dbid, CacheOpKind kind, const char *arg, int len)
{
	int64		removed = 0;

	if (shm_shared == NULL || !OidIsValid(dbid))
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
			removed = shm_remove_matching(MATCH_PREFIX, dbid, arg, len);
			break;
		case CACHE_OP_PATTERN:
			removed = shm_remove_matching(MATCH_PATTERN, dbid, arg, len);
			break;
		case CACHE_OP_ALL:
			removed = shm_remove_matching(MATCH_ALL, dbid, NULL, 0);
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

	if (shm_shared == NULL)
		return;
	n = shm_remove_matching(MATCH_DATABASE, dbid, NULL, 0);
	elog(DEBUG1, "cache_ext: removed " INT64_FORMAT " %s of dropped database %u",
		 n, n == 1 ? "key" : "keys", dbid);
	for (int i = 0; i < MAX_DB_SLOTS; i++)
	{
		if (pg_atomic_read_u32(&shm_shared->dbs[i].dbid) == dbid &&
			pg_atomic_read_u64(&shm_shared->dbs[i].entries) == 0)
		{
			pg_atomic_write_u64(&shm_shared->dbs[i].blocks, 0);
			pg_atomic_write_u32(&shm_shared->dbs[i].dbid, InvalidOid);
		}
	}
}

/* This database's entries and the blocks they hold; the whole arena. */
static void
shmem_size(CacheStoreSize *out)
{
	DbUsage    *u;

	shm_require();
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

	shm_require();
	for (int i = 0; i < CACHE_PARTITIONS; i++)
		sum += ((volatile CachePartition *) &shm_shared->parts[i])->links;
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
