/*-------------------------------------------------------------------------
 *
 * near_cache.c
 *		A coherent near-cache of Redis values in this server's shared
 *		memory (cache_ext.redis_near_cache).
 *
 * A hit on Redis costs a network round trip; a hit here costs a lookup
 * under a shared partition lock.  Entries are kept coherent by three
 * means:
 *
 * 1. The tracking stream.  The worker holds a Redis client-tracking
 *    connection (redis_tracking.c, BCAST on cache_ext.key_prefix) and calls
 *    cache_near_invalidate_key() for every key Redis reports written,
 *    expired or evicted, and cache_near_invalidate_all() on a FLUSH and
 *    when it loses the connection.  Every entry records the tracking epoch
 *    it was filled under and is served only while that epoch is current, so
 *    nothing is served while there is no live tracking connection, and
 *    nothing filled before a reconnection (whose messages may be lost) is
 *    served after it.
 *
 * 2. Fills through a placeholder.  A reader that misses puts a placeholder
 *    (a token, the epoch) under the key before it sends GET, and keeps the
 *    reply only if that same placeholder is still there when the reply
 *    arrives.  Every invalidation removes entries and placeholders alike, so
 *    a reply that raced an invalidation (the documented race of client-side
 *    caching: the invalidation message arrives before the read's reply) is
 *    dropped.  PTTL goes in the same round trip, and the entry expires on
 *    its own then: Redis' expiry messages can come late.
 *
 * 3. This server's own writes void the keys they touch synchronously:
 *    store_redis.c before and after a SET or UNLINK (so that a fill that
 *    read the old value in between cannot survive), at the start of a
 *    prefix, pattern or flush invalidation (the commit-time repeat and the
 *    tracking stream then remove what a concurrent fill read meanwhile), and
 *    cache_queue_push() for what it queued: a fill that completes while the
 *    queue covers its key drops what it kept.
 *
 * Only sessions that use the server-wide cache_ext.redis_url and
 * cache_ext.key_prefix (from the configuration files or the command line,
 * as the worker does) use it: the tracking stream says nothing about
 * another Redis or another namespace.  Invalidations by any session void
 * the matching Redis keys, whatever its settings.
 *
 * Layout: NEAR_PARTITIONS partitions of equal size, chosen by the key's
 * hash, each with its own lock, hash table, entries and an arena of fixed
 * blocks that hold the key and then the value as a chain.  A CLOCK hand
 * over the entries evicts what was not read since it last passed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "cache_ext.h"
#include "common/hashfn.h"
#include "invalq.h"
#include "miscadmin.h"
#include "near_cache.h"
#include "port/pg_bitutils.h"
#include "redis_tracking.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc_tables.h"
#include "utils/timestamp.h"

#define NEAR_PARTITIONS		32	/* a power of two */
/* one block holds a key and a value of a few hundred bytes: one chain hop */
#define NEAR_BLOCK_SIZE		256
#define NEAR_BLOCK_DATA		(NEAR_BLOCK_SIZE - sizeof(int32))
/* one entry per this many bytes of a partition: values of a few hundred */
#define NEAR_BYTES_PER_ENTRY 512
/* the parts of a partition start on cache lines */
#define LINEALIGN(x)		TYPEALIGN(PG_CACHE_LINE_SIZE, (x))
/* Redis keys longer than this are not kept (a cache key is <= 1024) */
#define NEAR_MAX_KEY		(CACHE_MAX_KEY_LEN + 1024)
/* chains of the namespace index, per partition (a power of two) */
#define NEAR_NS_BUCKETS		256
/* the index looks at this many bytes of a key after cache_ext.key_prefix */
#define NEAR_NS_HEAD		4

typedef enum NearState
{
	NEAR_FREE = 0,
	NEAR_FILLING,				/* a placeholder: a read is in flight */
	NEAR_VALUE
} NearState;

typedef struct NearBlock
{
	int32		next;			/* next block of the chain, or -1 */
	char		data[NEAR_BLOCK_DATA];
} NearBlock;

/* 64 bytes: one cache line */
typedef struct NearEntry
{
	uint32		hash;
	int32		chain;			/* next in its bucket, or in the free list */
	int32		first;			/* first block: the key, then the value */
	int32		ns_prev;		/* namespace index chain (doubly linked) */
	int32		ns_next;
	uint32		keylen;
	uint32		vallen;
	uint32		ident;			/* hash of the redis_url and key_prefix */
	uint16		ns;				/* its namespace index bucket */
	uint8		state;			/* NearState */

	/*
	 * Set by readers under the shared lock: a byte store that races only
	 * with stores of the same value, or the hand's clearing under the
	 * exclusive lock, which readers do not hold then.
	 */
	volatile uint8 visited;
	uint64		epoch;			/* cache_tracking_epoch() at the fill */
	uint64		token;			/* NEAR_FILLING: whose placeholder */
	TimestampTz stamp;			/* FILLING: when it began; VALUE: expiry or 0 */
} NearEntry;

StaticAssertDecl(sizeof(NearEntry) <= PG_CACHE_LINE_SIZE,
				 "a near-cache entry should fit in a cache line");

typedef struct NearPart
{
	LWLock		lock;
	/* odd while a writer (under the exclusive lock) changes the partition */
	pg_atomic_uint32 seq;
	int32		free_entry;		/* free list of entries, through chain */
	int32		free_block;		/* free list of blocks, through next */
	uint32		nfree_blocks;
	uint32		nused;			/* entries not free */
	uint32		hand;			/* CLOCK */
	uint64		next_token;
} NearPart;

typedef struct NearShared
{
	Size		part_bytes;		/* each partition, header included */
	uint32		nentries;		/* per partition */
	uint32		nbuckets;		/* per partition, a power of two */
	uint32		nblocks;		/* per partition */
	uint32		max_blocks;		/* an entry takes at most this many */
	uint32		ns_len;			/* bytes of a Redis key the index hashes */
} NearShared;

int			cache_near_size_mb = 0;

static NearShared *near = NULL;

/* ---- layout ---- */

static Size
part_header_size(void)
{
	return LINEALIGN(sizeof(NearPart));
}

static inline NearPart *
part_at(int i)
{
	return (NearPart *) ((char *) near + LINEALIGN(sizeof(NearShared)) +
						 i * near->part_bytes);
}

static inline int32 *
buckets_of(NearPart *p)
{
	return (int32 *) ((char *) p + part_header_size());
}

/* the namespace index: entries by the head of their Redis key */
static inline int32 *
ns_buckets_of(NearPart *p)
{
	return (int32 *) ((char *) buckets_of(p) +
					  LINEALIGN(near->nbuckets * sizeof(int32)));
}

static inline NearEntry *
entries_of(NearPart *p)
{
	return (NearEntry *) ((char *) ns_buckets_of(p) +
						  LINEALIGN(NEAR_NS_BUCKETS * sizeof(int32)));
}

static inline NearBlock *
blocks_of(NearPart *p)
{
	return (NearBlock *) ((char *) entries_of(p) +
						  LINEALIGN(near->nentries * sizeof(NearEntry)));
}

static inline NearPart *
part_of(uint32 hash)
{
	/* the top bits: the low ones pick the bucket */
	return part_at(hash >> (32 - pg_leftmost_one_pos32(NEAR_PARTITIONS)));
}

/* Sizes of a partition of part_bytes: entries, buckets, blocks. */
static void
plan_part(Size part_bytes, uint32 *nentries, uint32 *nbuckets,
		  uint32 *nblocks)
{
	Size		rest;

	*nentries = Max(part_bytes / NEAR_BYTES_PER_ENTRY, 8);
	*nbuckets = pg_nextpower2_32(*nentries);
	rest = part_bytes - part_header_size() -
		LINEALIGN(*nbuckets * sizeof(int32)) -
		LINEALIGN(NEAR_NS_BUCKETS * sizeof(int32)) -
		LINEALIGN(*nentries * sizeof(NearEntry));
	*nblocks = rest / NEAR_BLOCK_SIZE;
}

void
cache_near_define_gucs(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("cache_ext.redis_near_cache",
							"Size of the near-cache of Redis values in shared memory; 0 turns it off.",
							NULL,
							&cache_near_size_mb,
							0, 0, 64 * 1024,	/* block numbers are 32 bits */
							PGC_POSTMASTER,
							GUC_UNIT_MB,
							NULL, NULL, NULL);
}

Size
cache_near_shmem_size(void)
{
	if (cache_near_size_mb <= 0)
		return 0;
	return LINEALIGN(sizeof(NearShared)) +
		(Size) cache_near_size_mb * 1024 * 1024;
}

void
cache_near_shmem_init(void)
{
	bool		found;
	Size		part_bytes;
	int			tranche;

	if (cache_near_size_mb <= 0)
		return;
	part_bytes = ((Size) cache_near_size_mb * 1024 * 1024 / NEAR_PARTITIONS) &
		~((Size) PG_CACHE_LINE_SIZE - 1);
	near = ShmemInitStruct("cache_ext near-cache", cache_near_shmem_size(),
						   &found);
	if (!found)
	{
		near->part_bytes = part_bytes;
		plan_part(part_bytes, &near->nentries, &near->nbuckets,
				  &near->nblocks);
		/* one value cannot take more than an eighth of its partition */
		near->max_blocks = near->nblocks / 8;
		/* the postmaster's setting: only how well the index sorts keys */
		near->ns_len = strlen(cache_key_prefix ? cache_key_prefix : "") +
			NEAR_NS_HEAD;
		tranche = LWLockNewTrancheId();
		for (int i = 0; i < NEAR_PARTITIONS; i++)
		{
			NearPart   *p = part_at(i);
			int32	   *buckets = buckets_of(p);
			NearEntry  *entries = entries_of(p);
			NearBlock  *blocks = blocks_of(p);

			memset(p, 0, sizeof(NearPart));
			LWLockInitialize(&p->lock, tranche);
			pg_atomic_init_u32(&p->seq, 0);
			for (uint32 b = 0; b < near->nbuckets; b++)
				buckets[b] = -1;
			for (uint32 b = 0; b < NEAR_NS_BUCKETS; b++)
				ns_buckets_of(p)[b] = -1;
			memset(entries, 0, near->nentries * sizeof(NearEntry));
			for (uint32 e = 0; e < near->nentries; e++)
				entries[e].chain = (e + 1 < near->nentries) ? e + 1 : -1;
			for (uint32 b = 0; b < near->nblocks; b++)
				blocks[b].next = (b + 1 < near->nblocks) ? b + 1 : -1;
			p->free_entry = 0;
			p->free_block = near->nblocks > 0 ? 0 : -1;
			p->nfree_blocks = near->nblocks;
		}
	}
	LWLockRegisterTranche(part_at(0)->lock.tranche, "cache_ext_near");
}

/* ---- entries (the partition's lock held) ---- */

/*
 * Writers take the exclusive lock and keep the partition's sequence odd
 * while they change it: readers that copied a value without the lock check
 * that it did not change meanwhile (read_unlocked).
 */
static inline void
write_begin(NearPart *p)
{
	uint32		s;

	LWLockAcquire(&p->lock, LW_EXCLUSIVE);
	/* odd already if a writer was cut short by an ERROR: odd and new */
	s = pg_atomic_read_u32(&p->seq);
	pg_atomic_write_u32(&p->seq, (s & 1) ? s + 2 : s + 1);
	pg_write_barrier();
}

static inline void
write_end(NearPart *p)
{
	pg_write_barrier();
	pg_atomic_write_u32(&p->seq, pg_atomic_read_u32(&p->seq) + 1);
	LWLockRelease(&p->lock);
}

static inline uint32
blocks_for(Size bytes)
{
	return (bytes + NEAR_BLOCK_DATA - 1) / NEAR_BLOCK_DATA;
}

/* Compares len bytes at offset "off" of e's chain with s. */
static bool
chain_equals(NearPart *p, const NearEntry *e, Size off, const char *s,
			 Size len)
{
	NearBlock  *blocks = blocks_of(p);
	int32		b = e->first;

	while (off >= NEAR_BLOCK_DATA)
	{
		b = blocks[b].next;
		off -= NEAR_BLOCK_DATA;
	}
	while (len > 0)
	{
		Size		n = Min(len, NEAR_BLOCK_DATA - off);

		if (memcmp(blocks[b].data + off, s, n) != 0)
			return false;
		s += n;
		len -= n;
		off = 0;
		b = blocks[b].next;
	}
	return true;
}

/* Copies len bytes from offset "off" of e's chain to dst. */
static void
chain_read(NearPart *p, const NearEntry *e, Size off, char *dst, Size len)
{
	NearBlock  *blocks = blocks_of(p);
	int32		b = e->first;

	while (off >= NEAR_BLOCK_DATA)
	{
		b = blocks[b].next;
		off -= NEAR_BLOCK_DATA;
	}
	while (len > 0)
	{
		Size		n = Min(len, NEAR_BLOCK_DATA - off);

		memcpy(dst, blocks[b].data + off, n);
		dst += n;
		len -= n;
		off = 0;
		b = blocks[b].next;
	}
}

/* Copies a, then b, into a new chain of e; the blocks are free. */
static void
chain_write(NearPart *p, NearEntry *e, const char *a, Size alen,
			const char *b, Size blen)
{
	NearBlock  *blocks = blocks_of(p);
	uint32		n = blocks_for(alen + blen);
	int32	   *link = &e->first;
	Size		used;
	int32		cur;

	for (uint32 i = 0; i < n; i++)
	{
		cur = p->free_block;
		p->free_block = blocks[cur].next;
		*link = cur;
		link = &blocks[cur].next;
	}
	*link = -1;
	p->nfree_blocks -= n;

	/* then the bytes, block after block */
	cur = e->first;
	used = 0;
	for (int part = 0; part < 2; part++)
	{
		const char *s = part == 0 ? a : b;
		Size		len = part == 0 ? alen : blen;

		while (len > 0)
		{
			Size		k;

			if (used == NEAR_BLOCK_DATA)
			{
				cur = blocks[cur].next;
				used = 0;
			}
			k = Min(len, NEAR_BLOCK_DATA - used);
			memcpy(blocks[cur].data + used, s, k);
			used += k;
			s += k;
			len -= k;
		}
	}
}

/*
 * The namespace index bucket of a Redis key: a hash of its first ns_len
 * bytes (of all of it when shorter).  Every key that starts with a given
 * string of ns_len bytes or more is in that string's bucket, so a bulk
 * invalidation of such a prefix walks one chain, not the whole near-cache.
 */
static inline uint16
ns_of(const char *rkey, Size len)
{
	return hash_bytes((const unsigned char *) rkey, Min(len, near->ns_len)) &
		(NEAR_NS_BUCKETS - 1);
}

static int32
find(NearPart *p, uint32 hash, const char *rkey, Size len)
{
	NearEntry  *entries = entries_of(p);
	int32		i = buckets_of(p)[hash & (near->nbuckets - 1)];

	for (; i >= 0; i = entries[i].chain)
		if (entries[i].hash == hash && entries[i].keylen == len &&
			chain_equals(p, &entries[i], 0, rkey, len))
			return i;
	return -1;
}

static void
remove_entry(NearPart *p, int32 i)
{
	NearEntry  *entries = entries_of(p);
	NearBlock  *blocks = blocks_of(p);
	NearEntry  *e = &entries[i];
	int32	   *link = &buckets_of(p)[e->hash & (near->nbuckets - 1)];
	int32		b;
	uint32		n = 0;

	while (*link != i)
		link = &entries[*link].chain;
	*link = e->chain;
	if (e->ns_prev >= 0)
		entries[e->ns_prev].ns_next = e->ns_next;
	else
		ns_buckets_of(p)[e->ns] = e->ns_next;
	if (e->ns_next >= 0)
		entries[e->ns_next].ns_prev = e->ns_prev;

	/* its blocks go back as one piece: find the chain's end */
	for (b = e->first; blocks[b].next >= 0; b = blocks[b].next)
		n++;
	blocks[b].next = p->free_block;
	p->free_block = e->first;
	p->nfree_blocks += n + 1;

	e->state = NEAR_FREE;
	e->chain = p->free_entry;
	p->free_entry = i;
	p->nused--;
}

/*
 * Makes room for one entry of nblocks blocks (at most max_blocks) by
 * evicting what was not read since the hand last passed.  Two turns of the
 * hand clear every bit, so this always ends.
 */
static void
make_room(NearPart *p, uint32 nblocks)
{
	NearEntry  *entries = entries_of(p);

	while (p->free_entry < 0 || p->nfree_blocks < nblocks)
	{
		NearEntry  *e = &entries[p->hand];
		int32		i = p->hand;

		p->hand = (p->hand + 1) % near->nentries;
		if (e->state == NEAR_FREE)
			continue;
		if (e->visited)
		{
			e->visited = 0;
			continue;
		}
		remove_entry(p, i);
	}
}

/* A new entry holding a, then b; the caller sets its fields. */
static NearEntry *
add_entry(NearPart *p, uint32 hash, const char *a, Size alen,
		  const char *b, Size blen)
{
	NearEntry  *entries = entries_of(p);
	int32	   *bucket = &buckets_of(p)[hash & (near->nbuckets - 1)];
	int32		i;
	NearEntry  *e;

	make_room(p, blocks_for(alen + blen));
	i = p->free_entry;
	e = &entries[i];
	p->free_entry = e->chain;
	chain_write(p, e, a, alen, b, blen);
	e->hash = hash;
	e->keylen = alen;
	e->vallen = blen;
	e->visited = 0;
	e->chain = *bucket;
	*bucket = i;
	e->ns = ns_of(a, alen);
	e->ns_prev = -1;
	e->ns_next = ns_buckets_of(p)[e->ns];
	if (e->ns_next >= 0)
		entries[e->ns_next].ns_prev = i;
	ns_buckets_of(p)[e->ns] = i;
	p->nused++;
	return e;
}

/* ---- which sessions may use it ---- */

static struct config_generic *url_guc = NULL;
static struct config_generic *prefix_guc = NULL;

static struct config_generic *
guc_record(const char *name)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
		if (pg_strcasecmp(vars[i]->name, name) == 0)
			return vars[i];
	elog(ERROR, "setting \"%s\" not found", name);
	return NULL;				/* keep compiler quiet */
}

/*
 * The identity of the Redis namespace a session uses, when it is the
 * server-wide one (both settings from the configuration files, the
 * command line or their defaults, as the worker sees them); 0 otherwise.
 * Entries carry it, so that during a reload that changes either setting a
 * session still on the old values does not read what one on the new ones
 * filled.
 */
static uint32
session_ident(void)
{
	/* the last settings seen, and their identity */
	static char url_seen[1024];
	static char prefix_seen[1024];
	static uint32 ident_seen = 0;
	const char *url = cache_redis_url_raw();
	uint32		h;

	if (url_guc == NULL)
	{
		url_guc = guc_record("cache_ext.redis_url");
		prefix_guc = guc_record("cache_ext.key_prefix");
	}
	if (url_guc->source > PGC_S_ARGV || prefix_guc->source > PGC_S_ARGV ||
		!cache_redis_configured())
		return 0;
	if (ident_seen != 0 && strcmp(url, url_seen) == 0 &&
		strcmp(cache_key_prefix, prefix_seen) == 0)
		return ident_seen;
	h = hash_bytes((const unsigned char *) url, strlen(url));
	h = hash_combine(h, hash_bytes((const unsigned char *) cache_key_prefix,
								   strlen(cache_key_prefix)));
	h = (h == 0) ? 1 : h;
	/* settings too long to remember are hashed again at every call */
	if (strlen(url) < sizeof(url_seen) &&
		strlen(cache_key_prefix) < sizeof(prefix_seen))
	{
		strcpy(url_seen, url);
		strcpy(prefix_seen, cache_key_prefix);
		ident_seen = h;
	}
	return h;
}

/*
 * The time for expiry checks on the read path: the coarse clock costs a
 * fraction of gettimeofday() but runs up to a tick behind, so it is taken
 * a tick ahead: an entry is never served past the TTL that PTTL gave.
 */
static inline TimestampTz
coarse_now_ahead(void)
{
	static int64 tick_us = -1;
	struct timespec ts;

	if (tick_us < 0)
	{
		if (clock_getres(CLOCK_REALTIME_COARSE, &ts) == 0)
			tick_us = (int64) ts.tv_sec * USECS_PER_SEC + ts.tv_nsec / 1000 + 1;
		else
			tick_us = USECS_PER_SEC;	/* no such clock: every TTL misses */
	}
	if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0)
		return PG_INT64_MAX;
	return ((TimestampTz) ts.tv_sec -
			((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) *
		USECS_PER_SEC + ts.tv_nsec / 1000 + tick_us;
}

static inline uint32
key_hash(const char *rkey, Size len)
{
	return hash_bytes((const unsigned char *) rkey, len);
}

/* ---- reads ---- */

typedef enum NearRead
{
	NEAR_READ_HIT,
	NEAR_READ_MISS,
	NEAR_READ_RACED				/* a writer came by: read under the lock */
} NearRead;

/*
 * Compares, or copies out, len bytes at offset "off" of the chain that
 * starts at block b, without the lock: every block number is checked, so a
 * chain that a writer is changing cannot lead out of the arena; the caller
 * checks the partition's sequence afterwards.  -1: the chain is broken.
 */
static int
chain_unlocked(NearPart *p, int32 b, Size off, const char *cmp, char *dst,
			   Size len)
{
	NearBlock  *blocks = blocks_of(p);
	uint32		hops = 0;

	while (len > 0)
	{
		Size		n;

		if (b < 0 || (uint32) b >= near->nblocks || hops++ > near->max_blocks)
			return -1;
		if (off >= NEAR_BLOCK_DATA)
		{
			off -= NEAR_BLOCK_DATA;
			b = *(volatile int32 *) &blocks[b].next;
			continue;
		}
		n = Min(len, NEAR_BLOCK_DATA - off);
		if (cmp != NULL)
		{
			if (memcmp(blocks[b].data + off, cmp, n) != 0)
				return 0;
			cmp += n;
		}
		else
		{
			memcpy(dst, blocks[b].data + off, n);
			dst += n;
		}
		len -= n;
		off = 0;
		b = *(volatile int32 *) &blocks[b].next;
	}
	return 1;
}

/*
 * A hit without taking the lock (a seqlock read): hits then cost no write
 * to shared memory, and readers never wait for one another.  RACED when a
 * writer was in the partition, or came by while this read.
 */
static NearRead
read_unlocked(NearPart *p, uint32 hash, const char *rkey, Size len,
			  uint32 ident, uint64 epoch, text **result)
{
	NearEntry  *entries = entries_of(p);
	uint32		s = pg_atomic_read_u32(&p->seq);
	uint32		steps = 0;
	int32		i;
	volatile NearEntry *e = NULL;
	uint8		state = NEAR_FREE;
	uint32		e_ident = 0;
	uint64		e_epoch = 0;
	TimestampTz stamp = 0;
	int32		first = -1;
	uint32		vallen = 0;
	text	   *t;
	int			copied;

	if (s & 1)
		return NEAR_READ_RACED;
	pg_read_barrier();
	i = *(volatile int32 *) &buckets_of(p)[hash & (near->nbuckets - 1)];
	while (i >= 0)
	{
		int			r;

		if ((uint32) i >= near->nentries || steps++ > near->nentries)
			return NEAR_READ_RACED;
		e = &entries[i];
		if (e->hash == hash && e->keylen == len)
		{
			r = chain_unlocked(p, e->first, 0, rkey, NULL, len);
			if (r < 0)
				return NEAR_READ_RACED;
			if (r == 1)
				break;
		}
		i = e->chain;
	}
	if (i >= 0)
	{
		state = e->state;
		e_ident = e->ident;
		e_epoch = e->epoch;
		stamp = e->stamp;
		first = e->first;
		vallen = e->vallen;
	}
	pg_read_barrier();
	if (pg_atomic_read_u32(&p->seq) != s)
		return NEAR_READ_RACED;
	if (i < 0 || state != NEAR_VALUE || e_ident != ident || e_epoch != epoch ||
		(stamp != 0 && stamp <= coarse_now_ahead()))
		return NEAR_READ_MISS;

	/* the fields were consistent: vallen is what a fill stored */
	if (vallen > near->max_blocks * NEAR_BLOCK_DATA)
		return NEAR_READ_RACED;
	t = palloc(VARHDRSZ + vallen);
	SET_VARSIZE(t, VARHDRSZ + vallen);
	copied = chain_unlocked(p, first, len, NULL, VARDATA(t), vallen);
	pg_read_barrier();
	if (copied != 1 || pg_atomic_read_u32(&p->seq) != s)
	{
		pfree(t);
		return NEAR_READ_RACED;
	}
	/* the entry may have been reused since: a wrong bit, no harm */
	if (!e->visited)
		e->visited = 1;
	*result = t;
	return NEAR_READ_HIT;
}

text *
cache_near_get(const char *rkey, size_t len, NearFill *fill)
{
	uint64		epoch;
	uint32		ident;
	uint32		hash;
	NearPart   *p;
	int32		i;
	TimestampTz now;
	text	   *value = NULL;

	fill->active = false;
	if (near == NULL || len > NEAR_MAX_KEY)
		return NULL;
	epoch = cache_tracking_live_epoch();
	if (epoch == 0 || (ident = session_ident()) == 0)
		return NULL;
	hash = key_hash(rkey, len);
	p = part_of(hash);

	switch (read_unlocked(p, hash, rkey, len, ident, epoch, &value))
	{
		case NEAR_READ_HIT:
			return value;
		case NEAR_READ_MISS:
			goto miss;
		case NEAR_READ_RACED:
			break;
	}

	LWLockAcquire(&p->lock, LW_SHARED);
	i = find(p, hash, rkey, len);
	if (i >= 0)
	{
		NearEntry  *e = &entries_of(p)[i];

		if (e->state == NEAR_VALUE && e->ident == ident && e->epoch == epoch &&
			(e->stamp == 0 || e->stamp > coarse_now_ahead()))
		{
			value = palloc_extended(VARHDRSZ + e->vallen, MCXT_ALLOC_NO_OOM);
			if (value != NULL)
			{
				SET_VARSIZE(value, VARHDRSZ + e->vallen);
				chain_read(p, e, e->keylen, VARDATA(value), e->vallen);
				if (!e->visited)
					e->visited = 1;
			}
		}
	}
	LWLockRelease(&p->lock);
	if (value != NULL)
		return value;

	/*
	 * A miss: put a placeholder, unless another read is filling the key
	 * already (one that has not given up on it: a read cut short by an
	 * ERROR leaves its placeholder behind).
	 */
miss:
	now = GetCurrentTimestamp();
	write_begin(p);
	i = find(p, hash, rkey, len);
	if (i >= 0)
	{
		NearEntry  *e = &entries_of(p)[i];

		if (e->state == NEAR_FILLING && e->ident == ident &&
			!TimestampDifferenceExceeds(e->stamp, now,
										Min(cache_redis_command_timeout,
											INT_MAX / 2) * 2))
		{
			write_end(p);
			return NULL;
		}
		remove_entry(p, i);
	}
	if (blocks_for(len) <= near->max_blocks)
	{
		NearEntry  *e = add_entry(p, hash, rkey, len, NULL, 0);

		e->state = NEAR_FILLING;
		e->ident = ident;
		e->epoch = epoch;
		e->token = ++p->next_token;
		e->stamp = now;
		fill->active = true;
		fill->hash = hash;
		fill->token = e->token;
		fill->sent_at = now;
	}
	write_end(p);
	return NULL;
}

/* Removes our placeholder, if it is still there. */
static void
cancel_fill(NearPart *p, NearFill *fill, const char *rkey, Size len)
{
	int32		i;

	write_begin(p);
	i = find(p, fill->hash, rkey, len);
	if (i >= 0 && entries_of(p)[i].state == NEAR_FILLING &&
		entries_of(p)[i].token == fill->token)
		remove_entry(p, i);
	write_end(p);
}

void
cache_near_complete(NearFill *fill, const char *rkey, size_t len,
					const char *key, int keylen,
					const char *val, size_t vallen, long long pttl_ms)
{
	NearPart   *p;
	int32		i;
	NearEntry  *e;
	bool		kept = false;

	if (!fill->active)
		return;
	fill->active = false;
	p = part_of(fill->hash);

	/* absent, gone meanwhile, expiring now or too large: nothing to keep */
	if (val == NULL || pttl_ms == 0 || pttl_ms < -1 ||
		blocks_for(len + vallen) > near->max_blocks)
	{
		cancel_fill(p, fill, rkey, len);
		return;
	}

	write_begin(p);
	i = find(p, fill->hash, rkey, len);
	if (i >= 0)
	{
		e = &entries_of(p)[i];
		if (e->state == NEAR_FILLING && e->token == fill->token)
		{
			uint32		ident = e->ident;
			uint64		epoch = e->epoch;

			remove_entry(p, i);
			if (epoch == cache_tracking_epoch())
			{
				e = add_entry(p, fill->hash, rkey, len, val, vallen);
				e->state = NEAR_VALUE;
				e->ident = ident;
				e->epoch = epoch;
				e->token = 0;
				e->stamp = (pttl_ms == -1) ? 0 :
					fill->sent_at + (TimestampTz) pttl_ms * 1000;
				kept = true;
			}
		}
	}
	write_end(p);

	/*
	 * A write whose invalidation is queued (Redis failed it) leaves the old
	 * value in Redis: drop what we kept if the queue covers it now.  The
	 * push voids after queueing, so either this sees the item or the push's
	 * void comes after what we kept.
	 */
	if (kept && cache_queue_nonempty() && cache_queue_covers(key, keylen))
		cache_near_invalidate_key(rkey, len);
}

/* ---- invalidation ---- */

void
cache_near_invalidate_key(const char *rkey, size_t len)
{
	uint32		hash;
	NearPart   *p;
	int32		i;

	if (near == NULL || len > NEAR_MAX_KEY)
		return;
	hash = key_hash(rkey, len);
	p = part_of(hash);

	/*
	 * Most keys named (every key another client writes, under BCAST) are
	 * not here: look under the shared lock first, so that unlocked readers
	 * of the partition are not sent to the lock for nothing.  A placeholder
	 * put after this look sends its GET after it, so after the write being
	 * reported.
	 */
	LWLockAcquire(&p->lock, LW_SHARED);
	i = find(p, hash, rkey, len);
	LWLockRelease(&p->lock);
	if (i < 0)
		return;
	write_begin(p);
	i = find(p, hash, rkey, len);
	if (i >= 0)
		remove_entry(p, i);
	write_end(p);
}

/* Does entry i match a bulk invalidation (see void_matching)? */
static bool
matches(NearPart *p, const NearEntry *e, const char *head, Size headlen,
		const char *pattern, int patlen, char *buf)
{
	if (e->state == NEAR_FREE || e->keylen < headlen ||
		!chain_equals(p, e, 0, head, headlen))
		return false;
	if (pattern == NULL)
		return true;
	chain_read(p, e, headlen, buf, e->keylen - headlen);
	return cache_glob_match(pattern, patlen, buf, e->keylen - headlen);
}

/*
 * Removes every entry whose Redis key starts with "head" and, when pattern
 * is not NULL, whose rest matches it (Redis MATCH semantics).  A head of
 * ns_len bytes or more walks one chain of the namespace index per
 * partition; a shorter one (a flush, a short prefix) walks every entry in
 * use.
 */
static void
void_matching(const char *head, Size headlen, const char *pattern,
			  int patlen)
{
	char	   *buf = NULL;
	bool		indexed;
	uint16		ns = 0;

	if (near == NULL)
		return;
	if (pattern != NULL)
		buf = palloc(NEAR_MAX_KEY);
	indexed = (headlen >= near->ns_len);
	if (indexed)
		ns = ns_of(head, headlen);
	for (int pi = 0; pi < NEAR_PARTITIONS; pi++)
	{
		NearPart   *p = part_at(pi);
		NearEntry  *entries = entries_of(p);

		write_begin(p);
		/* every chain holds only entries in use: cheaper than every slot */
		for (int b = indexed ? ns : 0; b < (indexed ? ns + 1 : NEAR_NS_BUCKETS); b++)
		{
			int32		next;

			for (int32 i = ns_buckets_of(p)[b]; i >= 0; i = next)
			{
				next = entries[i].ns_next;
				if (matches(p, &entries[i], head, headlen, pattern, patlen, buf))
					remove_entry(p, i);
			}
		}
		write_end(p);
	}
	if (buf)
		pfree(buf);
}

void
cache_near_invalidate_all(void)
{
	void_matching("", 0, NULL, 0);
}

/* cache_ext.key_prefix || text, palloc'd */
static char *
with_prefix(const char *s, int len, Size *outlen)
{
	Size		plen = strlen(cache_key_prefix);
	char	   *buf = palloc(plen + len + 1);

	memcpy(buf, cache_key_prefix, plen);
	memcpy(buf + plen, s, len);
	*outlen = plen + len;
	return buf;
}

void
cache_near_void_key(const char *key, int len)
{
	Size		rlen;
	char	   *rkey;

	if (near == NULL)
		return;
	rkey = with_prefix(key, len, &rlen);
	cache_near_invalidate_key(rkey, rlen);
	pfree(rkey);
}

void
cache_near_void_prefix(const char *prefix, int len)
{
	Size		headlen;
	char	   *head;

	if (near == NULL)
		return;
	head = with_prefix(prefix, len, &headlen);
	void_matching(head, headlen, NULL, 0);
	pfree(head);
}

void
cache_near_void_pattern(const char *pattern, int len)
{
	Size		headlen;
	char	   *head;
	int			lit = 0;

	if (near == NULL)
		return;

	/*
	 * The pattern's literal start (up to its first special character) is
	 * part of the head: a literal character matches only itself, so the
	 * rest of the pattern applies to the rest of the key, and a head of
	 * ns_len bytes or more walks one chain of the index, not every entry.
	 */
	while (lit < len && strchr("*?[\\", pattern[lit]) == NULL)
		lit++;
	head = with_prefix(pattern, lit, &headlen);
	void_matching(head, headlen, pattern + lit, len - lit);
	pfree(head);
}

void
cache_near_void_namespace(void)
{
	if (near == NULL)
		return;
	void_matching(cache_key_prefix, strlen(cache_key_prefix), NULL, 0);
}

void
cache_near_void_queued(int n, const CacheQueueItem *items)
{
	if (near == NULL)
		return;
	for (int i = 0; i < n; i++)
	{
		const CacheQueueItem *it = &items[i];

		switch (it->kind)
		{
			case CACHE_OP_KEY:
				cache_near_void_key(it->text, it->len);
				break;
			case CACHE_OP_PREFIX:
				cache_near_void_prefix(it->text, it->len);
				break;
			case CACHE_OP_PATTERN:
				cache_near_void_pattern(it->text, it->len);
				break;
			default:
				cache_near_void_namespace();
				break;
		}
	}
}
