/*-------------------------------------------------------------------------
 *
 * redis_keydir.c
 *		The key directory: the Redis keys that exist under the namespaces
 *		cache_ext invalidates, so that a prefix or pattern invalidation
 *		removes them by name instead of walking the whole keyspace.
 *
 * It serves only the server-wide cache_ext.redis_url and key_prefix that
 * the worker tracks (redis_tracking.c); a session with other settings walks
 * the keyspace with SCAN as before.
 *
 * Namespaces are full Redis key prefixes (key_prefix included).  A session
 * whose prefix invalidation (or a pattern's literal start) no namespace
 * covers registers it and uses SCAN this time; the worker then fills every
 * pending namespace with one background SCAN, a step per turn of its loop,
 * and marks them complete.  The invariant:
 *
 *	   for a complete namespace N, every key under N that exists in Redis is
 *	   in the directory, or a tracking notification that names it has not
 *	   been consumed by the worker yet.
 *
 * The fill keeps it (a key that exists throughout the SCAN is returned by
 * it; one written meanwhile is named by a notification, which the worker
 * consumes after marking N filling); every notification adds its key (a
 * notification says "modified", not "exists": the directory is a
 * superset); and the session's barrier (redis_tracking.c) turns the second
 * half into "is in the directory" before the session reads it.  Whatever
 * may break it makes the namespaces concerned pending again, to be refilled:
 * a lost or replaced tracking connection (notifications missed), a FLUSH,
 * a key that does not fit (the directory is full, or the key is longer than
 * LONG_KEY_MAX: overflow, retried after OVERFLOW_RETRY_MS, doubled at
 * each overflow in a row up to OVERFLOW_RETRY_MAX_MS, so that a namespace
 * that does not fit costs Redis one background SCAN every few minutes).
 *
 * Dead entries are pruned lazily: after a session's UNLINK, an entry is
 * removed unless a notification consumed after the UNLINK was sent touched
 * it (its key may have been written again since: then it stays).  Each
 * entry records the sequence number of the last notification that named
 * it, and the session notes the count consumed before sending.
 *
 * A key longer than an entry holds (KEY_MAX) continues in more entries,
 * chained through "more", that sit in no list of their own; its hash is
 * that of its first KEY_MAX bytes and its length.  Up to LONG_KEY_MAX.
 *
 * At most MAX_NAMESPACES are kept: a new one takes the place of the least
 * recently used (evict_ns()).  When a key does not fit, the namespaces not
 * invalidated for NS_IDLE_MS (and that the key is not under) are freed,
 * least recently used first, before the key overflows: an idle namespace
 * must not keep an active one on SCAN.
 *
 * Each key sits in one list, that of the longest namespace that matches
 * it.  The keys under a prefix P are then in the lists of the namespaces
 * that are prefixes of P (filtered by P) and of those P is a prefix of;
 * the directory serves P when one of the former is complete.
 *
 * One LWLock guards it all: the worker and removals take it exclusively,
 * readers in shared mode; it is held only while copying, never across a
 * round trip.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <hiredis/hiredis.h>

#include "cache_ext.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "redis_conn.h"
#include "redis_keydir.h"
#include "redis_tracking.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define KEY_MAX				100 /* an entry is 128 bytes */
#define LONG_KEY_MAX		1024	/* chained entries, up to this */
#define MAX_NAMESPACES		128
#define NS_PREFIX_MAX		200
#define URL_MAX				1024
#define PREFIX_MAX			256
#define NONE				PG_UINT32_MAX
#define OVERFLOW_RETRY_MS	10000	/* doubled at each overflow in a row */
#define OVERFLOW_RETRY_MAX_MS	(5 * 60 * 1000)
#define FILL_RETRY_MS		1000
#define NS_IDLE_MS			60000	/* unused this long: freed for room */
#define FILL_COUNT			"1000"
#define NOTE_BATCH			1024	/* keys noted per lock hold */

#define WHAT_FILL			"list keys"

typedef enum NsState
{
	NS_FREE = 0,
	NS_PENDING,					/* to be filled (not before not_before) */
	NS_FILLING,					/* in the worker's current pass */
	NS_COMPLETE
} NsState;

typedef struct KeyNs
{
	uint8		state;
	uint16		len;
	uint32		head;			/* first entry of its list */
	uint32		nkeys;
	uint32		overflows;		/* in a row, for the back-off */
	pg_atomic_uint64 last_used; /* TimestampTz: the least used is evicted */
	TimestampTz not_before;
	char		prefix[NS_PREFIX_MAX];
} KeyNs;

typedef struct DirEntry
{
	uint32		hnext;			/* hash chain */
	uint32		next;			/* namespace list, or free list */
	uint32		prev;
	uint16		ns;
	uint16		len;
	uint64		touched;		/* last notification that named it */
	uint32		more;			/* where the key continues, or NONE */
	char		key[KEY_MAX];
} DirEntry;

StaticAssertDecl(sizeof(DirEntry) == 128, "a directory entry is 128 bytes");

typedef struct KeyDir
{
	LWLock		lock;
	bool		active;			/* url and prefix are those tracked */
	char		url[URL_MAX];
	char		prefix[PREFIX_MAX];
	int			nns;			/* slots ever used in ns[] */
	KeyNs		ns[MAX_NAMESPACES];
	uint32		capacity;
	uint32		nbuckets;
	uint32		free;
	uint32		nused;			/* entries in use, continuations included */
	uint64		overflows;
	/* then the hash buckets (capacity), then the entries */
} KeyDir;

/* cache_ext.redis_key_directory_size, in kB */
static int	keydir_size_kb = 8192;

static KeyDir *dir = NULL;
static uint32 *dir_buckets;
static DirEntry *dir_entries;

/* the worker's fill pass */
static bool fill_active = false;
static char fill_cursor[32];
static uint64 fill_epoch;
static StringInfo fill_pattern = NULL;
static bool fill_member[MAX_NAMESPACES];
static TimestampTz last_overflow_log = 0;


/* ---- settings and shared memory ---- */

void
cache_keydir_define_gucs(void)
{
	/* restart-only: defined only while preloading, as cache_ext.shmem_size */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("cache_ext.redis_key_directory_size",
							"Shared memory for the directory of Redis keys under invalidated namespaces.",
							"0 turns the directory off: Redis prefix and pattern invalidations walk the keyspace with SCAN.",
							&keydir_size_kb,
							8192, 0, 1024 * 1024,
							PGC_POSTMASTER,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
}

static uint32
keydir_capacity(void)
{
	Size		bytes = (Size) keydir_size_kb * 1024;

	return (uint32) (bytes / (sizeof(DirEntry) + sizeof(uint32)));
}

Size
cache_keydir_shmem_size(void)
{
	uint32		cap = keydir_capacity();

	if (cap == 0)
		return 0;
	return add_size(MAXALIGN(sizeof(KeyDir)),
					add_size(MAXALIGN(mul_size(cap, sizeof(uint32))),
							 mul_size(cap, sizeof(DirEntry))));
}

static void
clear_entries(void)
{
	for (uint32 i = 0; i < dir->nbuckets; i++)
		dir_buckets[i] = NONE;
	for (uint32 i = 0; i < dir->capacity; i++)
		dir_entries[i].next = (i + 1 < dir->capacity) ? i + 1 : NONE;
	dir->free = 0;
	dir->nused = 0;
	for (int i = 0; i < dir->nns; i++)
	{
		dir->ns[i].head = NONE;
		dir->ns[i].nkeys = 0;
	}
}

void
cache_keydir_shmem_init(void)
{
	uint32		cap = keydir_capacity();
	bool		found;
	char	   *base;

	if (cap == 0)
		return;
	base = ShmemInitStruct("cache_ext key directory",
						   cache_keydir_shmem_size(), &found);
	dir = (KeyDir *) base;
	dir_buckets = (uint32 *) (base + MAXALIGN(sizeof(KeyDir)));
	dir_entries = (DirEntry *) (base + MAXALIGN(sizeof(KeyDir)) +
								MAXALIGN(cap * sizeof(uint32)));
	if (!found)
	{
		memset(dir, 0, sizeof(KeyDir));
		for (int i = 0; i < MAX_NAMESPACES; i++)
			pg_atomic_init_u64(&dir->ns[i].last_used, 0);
		LWLockInitialize(&dir->lock, LWLockNewTrancheId());
		dir->capacity = cap;
		dir->nbuckets = cap;
		clear_entries();
	}
	LWLockRegisterTranche(dir->lock.tranche, "cache_ext_keydir");
}


/* ---- entries (lock held) ---- */

static int	evict_ns(const char *key, size_t len, uint64 used_before);

static inline bool
has_prefix(const char *s, size_t len, const char *prefix, size_t plen)
{
	return len >= plen && memcmp(s, prefix, plen) == 0;
}

/*
 * The longest namespace in use that key starts with, or -1; *needed: one
 * of those it is under is complete or being filled, and so relies on the
 * directory listing it (a pending one will find it with its SCAN).
 */
static int
longest_ns(const char *key, size_t len, bool *needed)
{
	int			best = -1;

	*needed = false;
	for (int i = 0; i < dir->nns; i++)
	{
		KeyNs	   *ns = &dir->ns[i];

		if (ns->state == NS_FREE || !has_prefix(key, len, ns->prefix, ns->len))
			continue;
		if (ns->state != NS_PENDING)
			*needed = true;
		if (best < 0 || ns->len > dir->ns[best].len)
			best = i;
	}
	return best;
}

/* only the first KEY_MAX bytes: those an entry itself holds */
static uint32 *
bucket_of(const char *key, size_t len)
{
	uint32		h = hash_bytes((const unsigned char *) key, Min(len, KEY_MAX));

	return &dir_buckets[(h ^ (uint32) len) % dir->nbuckets];
}

/* Whether entry e holds key (continuations included). */
static bool
entry_equals(uint32 e, const char *key, size_t len)
{
	size_t		off = 0;

	if (dir_entries[e].len != len)
		return false;
	while (off < len)
	{
		size_t		n = Min(len - off, KEY_MAX);

		if (e == NONE || memcmp(dir_entries[e].key, key + off, n) != 0)
			return false;
		off += n;
		e = dir_entries[e].more;
	}
	return true;
}

/*
 * The key of entry e: in the entry itself when it fits, else copied into
 * buf (LONG_KEY_MAX bytes).
 */
static const char *
entry_key(uint32 e, char *buf)
{
	size_t		len = dir_entries[e].len;
	size_t		off = 0;

	if (len <= KEY_MAX)
		return dir_entries[e].key;
	while (off < len && e != NONE)
	{
		size_t		n = Min(len - off, KEY_MAX);

		memcpy(buf + off, dir_entries[e].key, n);
		off += n;
		e = dir_entries[e].more;
	}
	return buf;
}

static uint32
lookup(const char *key, size_t len)
{
	for (uint32 e = *bucket_of(key, len); e != NONE; e = dir_entries[e].hnext)
		if (entry_equals(e, key, len))
			return e;
	return NONE;
}

static void
list_unlink(uint32 e)
{
	DirEntry   *d = &dir_entries[e];
	KeyNs	   *ns = &dir->ns[d->ns];

	if (d->prev != NONE)
		dir_entries[d->prev].next = d->next;
	else
		ns->head = d->next;
	if (d->next != NONE)
		dir_entries[d->next].prev = d->prev;
	ns->nkeys--;
}

static void
list_link(uint32 e, int nsi)
{
	DirEntry   *d = &dir_entries[e];
	KeyNs	   *ns = &dir->ns[nsi];

	d->ns = nsi;
	d->prev = NONE;
	d->next = ns->head;
	if (ns->head != NONE)
		dir_entries[ns->head].prev = e;
	ns->head = e;
	ns->nkeys++;
}

static void
remove_entry(uint32 e)
{
	DirEntry   *d = &dir_entries[e];
	uint32	   *link = bucket_of(d->key, d->len);

	while (*link != e)
		link = &dir_entries[*link].hnext;
	*link = d->hnext;
	list_unlink(e);
	while (e != NONE)
	{
		uint32		more = dir_entries[e].more;

		dir_entries[e].next = dir->free;
		dir->free = e;
		dir->nused--;
		e = more;
	}
}

/*
 * A key that does not fit: every namespace it is under loses its
 * completeness and its list (the memory is better spent elsewhere until
 * the retry), and is refilled after OVERFLOW_RETRY_MS.
 */
static void
overflow(const char *key, size_t len)
{
	TimestampTz now = GetCurrentTimestamp();

	dir->overflows++;
	for (int i = 0; i < dir->nns; i++)
	{
		KeyNs	   *ns = &dir->ns[i];
		int64		delay = OVERFLOW_RETRY_MS;

		if (ns->state == NS_FREE || !has_prefix(key, len, ns->prefix, ns->len))
			continue;
		while (ns->head != NONE)
			remove_entry(ns->head);
		if (ns->state == NS_PENDING)
			continue;			/* already waiting for its retry */
		for (uint32 n = 0; n < ns->overflows && delay < OVERFLOW_RETRY_MAX_MS; n++)
			delay *= 2;
		ns->overflows++;
		ns->state = NS_PENDING;
		ns->not_before = TimestampTzPlusMilliseconds(now,
													 Min(delay, OVERFLOW_RETRY_MAX_MS));
	}
	if (TimestampDifferenceExceeds(last_overflow_log, now, 60000))
	{
		last_overflow_log = now;
		ereport(LOG,
				(errmsg("cache_ext worker: the Redis key directory is full (%u entries)",
						dir->nused),
				 errdetail("Invalidations under the namespaces concerned use SCAN until they are rebuilt."),
				 errhint("Raise cache_ext.redis_key_directory_size.")));
	}
}

/* Adds or touches a key, under its longest namespace if any. */
static void
note_key(const char *key, size_t len, uint64 seq)
{
	bool		needed;
	int			nsi = longest_ns(key, len, &needed);
	uint32		e;
	uint32		last;
	uint32		need;
	DirEntry   *d;

	if (nsi < 0)
		return;
	e = (len <= LONG_KEY_MAX) ? lookup(key, len) : NONE;
	if (e != NONE)
	{
		d = &dir_entries[e];
		d->touched = seq;
		/* a namespace registered since may now be the longest */
		if (d->ns != nsi)
		{
			list_unlink(e);
			list_link(e, nsi);
		}
		return;
	}
	if (!needed)
		return;
	if (len > LONG_KEY_MAX)
	{
		overflow(key, len);
		return;
	}
	need = Max((len + KEY_MAX - 1) / KEY_MAX, 1);
	if (dir->capacity - dir->nused < need)
	{
		uint64		idle = (uint64)
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), -NS_IDLE_MS);

		/* the key's own namespaces are spared: nsi stays valid */
		while (dir->capacity - dir->nused < need &&
			   evict_ns(key, len, idle) >= 0)
			;
		if (dir->capacity - dir->nused < need)
		{
			overflow(key, len);
			return;
		}
	}
	e = dir->free;
	d = &dir_entries[e];
	dir->free = d->next;
	dir->nused++;
	d->len = len;
	memcpy(d->key, key, Min(len, KEY_MAX));
	d->more = NONE;
	/* the rest of a long key, in as many more entries as it takes */
	last = e;
	for (size_t off = KEY_MAX; off < len; off += KEY_MAX)
	{
		uint32		c = dir->free;

		dir->free = dir_entries[c].next;
		dir->nused++;
		memcpy(dir_entries[c].key, key + off, Min(len - off, KEY_MAX));
		dir_entries[c].more = NONE;
		dir_entries[last].more = c;
		last = c;
	}
	d->touched = seq;
	d->hnext = *bucket_of(key, len);
	*bucket_of(key, len) = e;
	list_link(e, nsi);
}


/* ---- the worker ---- */

static void
abort_fill(void)
{
	fill_active = false;
}

/*
 * A new tracking session (url and prefix), or none (NULL): nothing listed
 * so far can be trusted; every namespace is to be filled again.
 */
void
cache_keydir_reset(const char *url, const char *prefix)
{
	if (dir == NULL)
		return;
	abort_fill();
	LWLockAcquire(&dir->lock, LW_EXCLUSIVE);
	clear_entries();
	for (int i = 0; i < dir->nns; i++)
		if (dir->ns[i].state != NS_FREE)
		{
			dir->ns[i].state = NS_PENDING;
			dir->ns[i].not_before = 0;
		}
	dir->active = (url != NULL && prefix != NULL &&
				   strlen(url) < URL_MAX && strlen(prefix) < PREFIX_MAX);
	if (dir->active)
	{
		strlcpy(dir->url, url, URL_MAX);
		strlcpy(dir->prefix, prefix, PREFIX_MAX);
	}
	LWLockRelease(&dir->lock);
}

/* FLUSHDB or FLUSHALL (of some database of that Redis): refill all. */
void
cache_keydir_flushed(void)
{
	if (dir == NULL)
		return;
	abort_fill();
	LWLockAcquire(&dir->lock, LW_EXCLUSIVE);
	clear_entries();
	for (int i = 0; i < dir->nns; i++)
		if (dir->ns[i].state != NS_FREE)
		{
			dir->ns[i].state = NS_PENDING;
			dir->ns[i].not_before = 0;
		}
	LWLockRelease(&dir->lock);
}

/*
 * The keys of one notification.  The lock is taken once per batch, not per
 * key: a bulk write elsewhere names thousands of keys at once.
 */
void
cache_keydir_note_keys(int n, const char *const *keys, const size_t *lens,
					   uint64 seq)
{
	/* read unlocked: a namespace registered meanwhile is pending (not needed) */
	if (dir == NULL || !dir->active || dir->nns == 0)
		return;
	for (int start = 0; start < n; start += NOTE_BATCH)
	{
		int			end = Min(n, start + NOTE_BATCH);

		LWLockAcquire(&dir->lock, LW_EXCLUSIVE);
		for (int i = start; i < end; i++)
			note_key(keys[i], lens[i], seq);
		LWLockRelease(&dir->lock);
	}
}

/*
 * Starts a pass over the pending namespaces that are due: they become
 * filling, and the SCAN matches their longest common prefix.
 */
static bool
start_fill(void)
{
	TimestampTz now = GetCurrentTimestamp();
	const char *common = NULL;
	int			commonlen = 0;

	LWLockAcquire(&dir->lock, LW_EXCLUSIVE);
	for (int i = 0; i < dir->nns; i++)
	{
		KeyNs	   *ns = &dir->ns[i];

		fill_member[i] = false;
		if (ns->state != NS_PENDING || ns->not_before > now)
			continue;
		ns->state = NS_FILLING;
		fill_member[i] = true;
		if (common == NULL)
		{
			common = ns->prefix;
			commonlen = ns->len;
		}
		else
		{
			int			n = 0;

			while (n < commonlen && n < ns->len && common[n] == ns->prefix[n])
				n++;
			commonlen = n;
		}
	}
	if (common != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		if (fill_pattern == NULL)
			fill_pattern = makeStringInfo();
		resetStringInfo(fill_pattern);
		redis_match_literal(fill_pattern, common, commonlen);
		appendStringInfoChar(fill_pattern, '*');
		MemoryContextSwitchTo(old);
	}
	LWLockRelease(&dir->lock);

	if (common == NULL)
		return false;
	strcpy(fill_cursor, "0");
	fill_epoch = cache_tracking_epoch();
	fill_active = true;
	return true;
}

/* The pass ends: its namespaces become complete, or pending after a failure. */
static void
end_fill(bool ok)
{
	TimestampTz retry = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													FILL_RETRY_MS);

	fill_active = false;
	LWLockAcquire(&dir->lock, LW_EXCLUSIVE);
	for (int i = 0; i < dir->nns; i++)
	{
		if (!fill_member[i] || dir->ns[i].state != NS_FILLING)
			continue;
		if (ok)
		{
			dir->ns[i].state = NS_COMPLETE;
			dir->ns[i].overflows = 0;
		}
		else
		{
			dir->ns[i].state = NS_PENDING;
			dir->ns[i].not_before = retry;
		}
	}
	LWLockRelease(&dir->lock);
}

/*
 * One SCAN step of the fill, on the worker's own connection (the
 * server-wide URL: queued deliveries restore it).  True while there is
 * more to do.
 */
bool
cache_keydir_fill_step(void)
{
	char		cursor[32];
	const char *argv[6] = {"SCAN", cursor, "MATCH", NULL, "COUNT", FILL_COUNT};
	size_t		argvlen[6] = {4, 0, 5, 0, 5, strlen(FILL_COUNT)};
	redisReply *reply;
	redisReply *keys;
	uint64		seq;

	if (dir == NULL || !dir->active)
		return false;
	if (!fill_active && !start_fill())
		return false;

	strlcpy(cursor, fill_cursor, sizeof(cursor));
	argvlen[1] = strlen(cursor);
	argv[3] = fill_pattern->data;
	argvlen[3] = fill_pattern->len;
	reply = redis_command(WHAT_FILL, 6, argv, argvlen);
	if (!fill_active || cache_tracking_epoch() != fill_epoch)
	{
		/* the session was lost meanwhile: the reset made all pending */
		if (reply)
			freeReplyObject(reply);
		fill_active = false;
		return true;
	}
	if (reply == NULL)
	{
		end_fill(false);
		return false;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		reply->element[0]->type != REDIS_REPLY_STRING ||
		reply->element[0]->len >= sizeof(fill_cursor) ||
		reply->element[1]->type != REDIS_REPLY_ARRAY)
	{
		redis_unexpected_reply(WHAT_FILL, reply);
		end_fill(false);
		return false;
	}

	/*
	 * A key SCAN returns existed during the step; any later write to it is
	 * named by a notification consumed after this one.
	 */
	seq = cache_tracking_consumed();
	keys = reply->element[1];
	LWLockAcquire(&dir->lock, LW_EXCLUSIVE);
	for (size_t i = 0; i < keys->elements; i++)
		if (keys->element[i]->type == REDIS_REPLY_STRING)
			note_key(keys->element[i]->str, keys->element[i]->len, seq);
	LWLockRelease(&dir->lock);
	memcpy(fill_cursor, reply->element[0]->str, reply->element[0]->len + 1);
	freeReplyObject(reply);

	if (strcmp(fill_cursor, "0") == 0)
		end_fill(true);
	return true;
}


/* ---- sessions ---- */

/*
 * Frees the least recently used namespace (lock held exclusively), for a
 * new one, or (key not NULL) for room: then only one last used before
 * used_before, and that key is not under.  Its keys go to the list of the
 * longest namespace left that they are under, which is where a complete
 * namespace above it looks for them, or leave the directory if none is.
 * The slot freed, or -1.
 */
static int
evict_ns(const char *key, size_t len, uint64 used_before)
{
	int			victim = -1;
	uint32		e;
	char		buf[LONG_KEY_MAX];

	for (int i = 0; i < dir->nns; i++)
	{
		KeyNs	   *ns = &dir->ns[i];
		uint64		used = pg_atomic_read_u64(&ns->last_used);

		if (ns->state == NS_FREE ||
			(key != NULL && (used >= used_before ||
							 has_prefix(key, len, ns->prefix, ns->len))))
			continue;
		if (victim < 0 || used < pg_atomic_read_u64(&dir->ns[victim].last_used))
			victim = i;
	}
	if (victim < 0)
		return -1;
	dir->ns[victim].state = NS_FREE;
	while ((e = dir->ns[victim].head) != NONE)
	{
		bool		needed;
		int			nsi = longest_ns(entry_key(e, buf), dir_entries[e].len,
									 &needed);

		if (nsi < 0)
			remove_entry(e);
		else
		{
			list_unlink(e);
			list_link(e, nsi);
		}
	}
	return victim;
}

/* Whether this session's settings are those the worker tracks. */
static bool
same_settings(void)
{
	return dir->active &&
		strcmp(dir->url, cache_redis_url_raw()) == 0 &&
		strcmp(dir->prefix, cache_key_prefix) == 0;
}

/*
 * A complete namespace that P is under; -1 if none; *known if any is.
 * Those it finds are marked as used (an unlocked hint for the eviction).
 */
static int
covering_ns(const char *p, int len, bool *known)
{
	TimestampTz now = GetCurrentTimestamp();

	*known = false;
	for (int i = 0; i < dir->nns; i++)
	{
		KeyNs	   *ns = &dir->ns[i];

		if (ns->state == NS_FREE || !has_prefix(p, len, ns->prefix, ns->len))
			continue;
		*known = true;
		pg_atomic_write_u64(&ns->last_used, (uint64) now);
		if (ns->state == NS_COMPLETE)
			return i;
	}
	return -1;
}

/*
 * The tracking epoch if the directory can serve the invalidation of the
 * Redis keys starting with p (key_prefix included), else 0.  A prefix that
 * no namespace covers is registered for the worker to fill, for next time.
 */
uint64
cache_keydir_covers(const char *p, int len)
{
	uint64		epoch = cache_tracking_live_epoch();
	bool		known;
	int			slot = -1;

	if (dir == NULL || epoch == 0)
		return 0;
	LWLockAcquire(&dir->lock, LW_SHARED);
	if (!same_settings())
	{
		LWLockRelease(&dir->lock);
		return 0;
	}
	if (covering_ns(p, len, &known) >= 0)
	{
		LWLockRelease(&dir->lock);
		return epoch;
	}
	LWLockRelease(&dir->lock);
	if (known || len >= NS_PREFIX_MAX)
		return 0;

	LWLockAcquire(&dir->lock, LW_EXCLUSIVE);
	(void) covering_ns(p, len, &known);
	if (!known && same_settings())
	{
		for (int i = 0; i < dir->nns && slot < 0; i++)
			if (dir->ns[i].state == NS_FREE)
				slot = i;
		if (slot < 0 && dir->nns < MAX_NAMESPACES)
			slot = dir->nns++;
		if (slot < 0)
			slot = evict_ns(NULL, 0, 0);
		if (slot >= 0)
		{
			KeyNs	   *ns = &dir->ns[slot];

			pg_atomic_write_u64(&ns->last_used, (uint64) GetCurrentTimestamp());
			memcpy(ns->prefix, p, len);
			ns->len = len;
			ns->head = NONE;
			ns->nkeys = 0;
			ns->overflows = 0;
			ns->not_before = 0;
			ns->state = NS_PENDING;
		}
	}
	LWLockRelease(&dir->lock);
	if (slot >= 0)
		cache_tracking_wake_worker();
	return 0;
}

/*
 * Copies out the keys under p (and matching the glob pattern pat, applied
 * to the key after skip bytes, when pat is not NULL), once the barrier of
 * "epoch" has passed.  False if the directory cannot serve p any more.
 */
bool
cache_keydir_collect(const char *p, int len, const char *pat, int patlen,
					 int skip, uint64 epoch, CacheKeyList *out)
{
	bool		known;
	size_t		total = 0;
	int			n = 0;
	char	   *data = NULL;
	char		buf[LONG_KEY_MAX];

	memset(out, 0, sizeof(*out));
	LWLockAcquire(&dir->lock, LW_SHARED);
	if (cache_tracking_epoch() != epoch || !same_settings() ||
		covering_ns(p, len, &known) < 0)
	{
		LWLockRelease(&dir->lock);
		return false;
	}

	/* the lists to walk: namespaces P is under, and those under P */
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < dir->nns; i++)
		{
			KeyNs	   *ns = &dir->ns[i];
			bool		filter;

			if (ns->state == NS_FREE)
				continue;
			if (has_prefix(p, len, ns->prefix, ns->len))
				filter = (ns->len < len);
			else if (has_prefix(ns->prefix, ns->len, p, len))
				filter = false;
			else
				continue;
			for (uint32 e = ns->head; e != NONE; e = dir_entries[e].next)
			{
				DirEntry   *d = &dir_entries[e];
				const char *key = entry_key(e, buf);

				if (filter && !has_prefix(key, d->len, p, len))
					continue;
				if (pat != NULL &&
					!cache_glob_match(pat, patlen, key + skip, d->len - skip))
					continue;
				if (pass == 0)
				{
					n++;
					total += d->len;
					continue;
				}
				memcpy(data, key, d->len);
				out->keys[out->nkeys] = data;
				out->lens[out->nkeys++] = d->len;
				data += d->len;
			}
		}
		if (pass == 0)
		{
			if (n == 0)
				break;
			out->keys = palloc(n * sizeof(char *));
			out->lens = palloc(n * sizeof(size_t));
			data = out->data = palloc(total + 1);
		}
	}
	LWLockRelease(&dir->lock);
	return true;
}

/*
 * Forgets keys a session has just unlinked, unless a notification consumed
 * after "consumed" named them (they may have been written again since).
 */
void
cache_keydir_forget(int n, const char *const *keys, const size_t *lens,
					uint64 consumed)
{
	LWLockAcquire(&dir->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		uint32		e = (lens[i] <= LONG_KEY_MAX) ? lookup(keys[i], lens[i]) : NONE;

		if (e != NONE && dir_entries[e].touched <= consumed)
			remove_entry(e);
	}
	LWLockRelease(&dir->lock);
}
