/*-------------------------------------------------------------------------
 *
 * invalq.c
 *		The queue of Redis invalidations waiting for delivery, in shared
 *		memory and in a file in the data directory.
 *
 * Layout.  Entries are variable-length records in one byte buffer, oldest
 * first, between "head" and "tail".  A push appends at the tail, the worker
 * (redis_worker.c) removes the head once Redis has taken it.  When the tail
 * reaches the end of the buffer the live entries move back to its start: a
 * linear buffer rather than a wrapping ring, so that an entry is always
 * contiguous and covers() is a plain walk.  When even that leaves no room,
 * duplicates are merged (of identical entries only the newest is needed: it
 * is delivered after the others), then every entry is widened to its
 * namespace (CacheQueueItem.nslen) and merged again; beyond that a push
 * fails and its caller must not commit.  An entry's Redis URL, password
 * included, is an index into a small table: never repeated, never shown.
 *
 * Durability.  A push appends its items to QUEUE_FILE and fsyncs it before
 * it returns true.  The postmaster loads the file whenever it creates
 * shared memory, at start and after a crash, so nothing queued is lost.
 * The file is a log of what was pushed, not of what is left: the worker
 * truncates it when the queue is empty and rewrites it from memory when it
 * has grown by more than the queue's size since the last rewrite.  So an
 * entry can be delivered again after a crash, which is harmless: delivering
 * an invalidation only removes keys.  A record whose CRC does not match ends
 * the file: a write torn by a crash, whose push never returned true.  After
 * such a tail, or any failed write, the file is rewritten whole (a new file
 * renamed over it) before anything is appended again.
 *
 * Locking.  "lock" protects the entries; "file_lock" protects the file and
 * is taken first.  A push holds file_lock from its change in memory to its
 * fsync, so that the file's order is the queue's, while readers (covers(),
 * on every read while something is queued) take only "lock" and never wait
 * for an fsync.  No ERROR can be raised while "lock" is held: memory for a
 * rebuild is asked for without failing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hashfn.h"
#include "invalq.h"
#include "near_cache.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "port/pg_bitutils.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define QUEUE_FILE		"cache_ext_queue"
#define QUEUE_TMP_FILE	"cache_ext_queue.tmp"
#define QUEUE_MAGIC		0x51584543	/* "CEXQ" */
#define QUEUE_VERSION	1

/* distinct Redis URLs with something queued at the same time */
#define MAX_URLS		16
#define MAX_URL_LEN		1024

/* a rewrite writes the file in pieces of this size */
#define WRITE_CHUNK		(64 * 1024)

/* widening levels of rebuild() */
#define WIDEN_NONE		0		/* only merge identical entries */
#define WIDEN_NAMESPACE 1		/* each entry to its namespace */
#define WIDEN_ALL		2		/* each to all of its key_prefix: loading only */

/* cache_ext.queue_size, in kB */
static int	queue_size_kb = 4096;

typedef struct QueueUrl
{
	int64		refs;			/* entries using it; free at 0 */
	char		url[MAX_URL_LEN];	/* cache_ext.redis_url, with password */
} QueueUrl;

typedef struct QueueEntry
{
	uint32		size;			/* of the whole entry, MAXALIGN'd */
	uint8		kind;			/* CacheOpKind */
	uint8		url;			/* index in urls[] */
	uint16		padding;
	uint32		prefixlen;		/* the pusher's cache_ext.key_prefix */
	uint32		len;			/* the key, prefix or pattern */
	uint32		nslen;
	TransactionId wait_xid;
	uint64		seq;
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* key_prefix, then text */
} QueueEntry;

#define ENTRY_SIZE(prefixlen, len) \
	MAXALIGN(offsetof(QueueEntry, data) + (Size) (prefixlen) + (Size) (len))

typedef struct QueueShared
{
	LWLock		lock;			/* entries, urls[], head, tail, worker */
	LWLock		file_lock;		/* the file and the file_* fields */
	pg_atomic_uint64 count;		/* entries queued: read without a lock */
	pg_atomic_uint64 delivered; /* since start */
	int			worker_procno;	/* the worker's PGPROC, or -1 */
	uint64		next_seq;
	uint32		capacity;		/* bytes of the buffer */
	uint32		head;
	uint32		tail;
	bool		file_rewrite;	/* rewrite the file before appending */
	uint64		file_bytes;		/* its size */
	uint64		file_base;		/* its size after the last rewrite */
	/* when the oldest append not fsync'd yet was made (TimestampTz), or 0 */
	pg_atomic_uint64 dirty_since;
	QueueUrl	urls[MAX_URLS];
} QueueShared;

static QueueShared *queue = NULL;
static char *buffer = NULL;		/* the entries, after QueueShared */

/* the file: a header, then records */
typedef struct QueueFileHeader
{
	uint32		magic;
	uint32		version;
} QueueFileHeader;

typedef struct QueueRecord
{
	uint32		size;			/* bytes after the CRC */
	pg_crc32c	crc;			/* of those bytes */
	uint32		kind;
	uint32		urllen;
	uint32		prefixlen;
	uint32		len;
	uint32		nslen;
	/* then url, key_prefix and text */
} QueueRecord;

#define RECORD_CRC_START offsetof(QueueRecord, kind)

/* An entry (or an item being pushed, or a record being loaded) in memory. */
typedef struct EntryView
{
	CacheOpKind kind;
	int			url;
	const char *prefix;
	uint32		prefixlen;
	const char *text;
	uint32		len;
	uint32		nslen;
	TransactionId wait_xid;
	uint64		seq;
} EntryView;


/* ---- settings and shared memory ---- */

void
cache_queue_define_gucs(void)
{
	/* restart-only: defined only while preloading, as cache_ext.shmem_size */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("cache_ext.queue_size",
							"Shared memory kept for Redis invalidations waiting for delivery.",
							"When it is full, waiting invalidations are widened to their namespaces; a write whose invalidation still does not fit fails.",
							&queue_size_kb,
							4096, 64, 1024 * 1024,
							PGC_POSTMASTER,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
}

Size
cache_queue_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(QueueShared)),
					mul_size((Size) queue_size_kb, 1024));
}

bool
cache_queue_available(void)
{
	return queue != NULL;
}

bool
cache_queue_nonempty(void)
{
	return queue != NULL && pg_atomic_read_u64(&queue->count) > 0;
}

int64
cache_queue_length(void)
{
	return queue ? (int64) pg_atomic_read_u64(&queue->count) : 0;
}

int64
cache_queue_delivered(void)
{
	return queue ? (int64) pg_atomic_read_u64(&queue->delivered) : 0;
}

static inline QueueEntry *
entry_at(uint32 offset)
{
	return (QueueEntry *) (buffer + offset);
}

static void
entry_view(const QueueEntry *e, EntryView *v)
{
	v->kind = (CacheOpKind) e->kind;
	v->url = e->url;
	v->prefix = e->data;
	v->prefixlen = e->prefixlen;
	v->text = e->data + e->prefixlen;
	v->len = e->len;
	v->nslen = e->nslen;
	v->wait_xid = e->wait_xid;
	v->seq = e->seq;
}

/* Writes an entry at dst; returns its size. */
static uint32
put_entry(char *dst, const EntryView *v)
{
	QueueEntry *e = (QueueEntry *) dst;

	e->size = ENTRY_SIZE(v->prefixlen, v->len);
	e->kind = (uint8) v->kind;
	e->url = (uint8) v->url;
	e->padding = 0;
	e->prefixlen = v->prefixlen;
	e->len = v->len;
	e->nslen = v->nslen;
	e->wait_xid = v->wait_xid;
	e->seq = v->seq;
	memcpy(e->data, v->prefix, v->prefixlen);
	memcpy(e->data + v->prefixlen, v->text, v->len);
	return e->size;
}

/*
 * The slot of a URL that has entries; if it has none and "claim" is true
 * (the caller holds the lock exclusively), a free slot with the URL copied
 * in, whose refs stay 0 until entries use it, so that an unused claim frees
 * itself.  -1 if none.
 */
static int
url_slot(const char *url, Size len, bool claim)
{
	int			free_slot = -1;

	for (int i = 0; i < MAX_URLS && len < MAX_URL_LEN; i++)
	{
		if (queue->urls[i].refs == 0)
			free_slot = (free_slot < 0) ? i : free_slot;
		else if (strlen(queue->urls[i].url) == len &&
				 memcmp(queue->urls[i].url, url, len) == 0)
			return i;
	}
	if (!claim || free_slot < 0)
		return -1;
	memcpy(queue->urls[free_slot].url, url, len);
	queue->urls[free_slot].url[len] = '\0';
	return free_slot;
}


/* ---- merging and widening ---- */

static void
widen(EntryView *v, int level)
{
	v->nslen = Min(v->nslen, v->len);
	if (level == WIDEN_NONE || v->kind == CACHE_OP_ALL)
		return;
	if (level == WIDEN_ALL || v->nslen == 0)
	{
		/*
		 * An item with no namespace widens to all of its key_prefix; with no
		 * key_prefix that would be the whole Redis database, the
		 * application's own keys included: it stays as it is (and a push
		 * that still does not fit fails its transaction).
		 */
		if (level != WIDEN_ALL && v->prefixlen == 0)
			return;
		v->kind = CACHE_OP_ALL;
		v->len = v->nslen = 0;
	}
	else if (v->kind != CACHE_OP_KEY || v->nslen < v->len)
	{
		/* a key that is its own namespace stays a key */
		v->kind = CACHE_OP_PREFIX;
		v->len = v->nslen;
	}
}

static uint64
view_hash(const EntryView *v)
{
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) v->prefix, v->prefixlen,
							((uint64) v->url << 8) | (uint64) v->kind);
	return hash_combine64(h, hash_bytes_extended((const unsigned char *) v->text,
												 v->len, 0));
}

static bool
view_equal(const EntryView *a, const EntryView *b)
{
	return a->kind == b->kind && a->url == b->url &&
		a->prefixlen == b->prefixlen && a->len == b->len &&
		memcmp(a->prefix, b->prefix, a->prefixlen) == 0 &&
		memcmp(a->text, b->text, a->len) == 0;
}

/*
 * Open addressing over views[]: finds "probe" among the views inserted so
 * far, or inserts views[insert] there when it is absent and insert >= 0.
 * slots[] holds index + 1, 0 for empty.
 */
static bool
table_lookup(int32 *slots, uint32 nslots, EntryView *views,
			 const EntryView *probe, int insert)
{
	uint32		i = (uint32) view_hash(probe) & (nslots - 1);

	while (slots[i] != 0)
	{
		if (view_equal(&views[slots[i] - 1], probe))
			return true;
		i = (i + 1) & (nslots - 1);
	}
	if (insert >= 0)
		slots[i] = insert + 1;
	return false;
}

/*
 * Makes views[0..n) (the queue's entries, oldest first, then the ones being
 * added) the queue's content: each widened as "level" says, then of
 * identical entries only the newest kept, and nothing kept that is older
 * than an ALL of its key_prefix (those are delivered later and cover it).
 * False, with the queue unchanged, if the result does not fit or memory is
 * short.  Caller holds the lock exclusively (or is the postmaster).
 */
static bool
rebuild(EntryView *views, int n, int level)
{
	uint32		nslots = pg_nextpower2_32((uint32) Max(n, 8) * 2);
	char	   *mem;
	int32	   *slots;
	bool	   *keep;
	char	   *out;
	Size		total = 0;
	int			kept = 0;

	/* one piece: the hash table, the decisions and the new content */
	mem = palloc_extended(queue->capacity + nslots * sizeof(int32) + n,
						  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
	if (mem == NULL)
		return false;
	out = mem;
	slots = (int32 *) (mem + MAXALIGN(queue->capacity));
	keep = (bool *) (slots + nslots);
	memset(slots, 0, nslots * sizeof(int32));

	for (int i = 0; i < n; i++)
		widen(&views[i], level);
	for (int i = n - 1; i >= 0; i--)
	{
		EntryView	all = views[i];

		all.kind = CACHE_OP_ALL;
		all.text = "";
		all.len = all.nslen = 0;
		keep[i] = !table_lookup(slots, nslots, views, &all, -1) &&
			!table_lookup(slots, nslots, views, &views[i], i);
		if (keep[i])
			total += ENTRY_SIZE(views[i].prefixlen, views[i].len);
		if (total > queue->capacity)
		{
			pfree(mem);
			return false;
		}
	}

	total = 0;
	for (int i = 0; i < MAX_URLS; i++)
		queue->urls[i].refs = 0;
	for (int i = 0; i < n; i++)
		if (keep[i])
		{
			total += put_entry(out + total, &views[i]);
			queue->urls[views[i].url].refs++;
			kept++;
		}
	memcpy(buffer, out, total);
	queue->head = 0;
	queue->tail = (uint32) total;
	pg_atomic_write_u64(&queue->count, kept);
	pfree(mem);
	return true;
}

/* The queue's entries, oldest first, then room for "extra" more. */
static EntryView *
collect_views(int extra, int *n)
{
	int			count = 0;
	EntryView  *views;
	uint32		off;

	for (off = queue->head; off < queue->tail; off += entry_at(off)->size)
		count++;
	views = palloc_extended((Size) (count + extra) * sizeof(EntryView),
							MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
	*n = 0;
	if (views == NULL)
		return NULL;
	for (off = queue->head; off < queue->tail; off += entry_at(off)->size)
		entry_view(entry_at(off), &views[(*n)++]);
	return views;
}


/* ---- pushing ---- */

static void
item_view(const CacheQueueItem *item, int url, const char *prefix,
		  uint32 prefixlen, TransactionId wait_xid, uint64 seq, EntryView *v)
{
	v->kind = item->kind;
	v->url = url;
	v->prefix = prefix;
	v->prefixlen = prefixlen;
	v->text = item->len > 0 ? item->text : "";
	v->len = item->len;
	v->nslen = Min(item->nslen, item->len);
	v->wait_xid = wait_xid;
	v->seq = seq;
}

/* Adds the items in memory; false if there is no room.  Holds the lock. */
static bool
queue_add(const char *url, const char *prefix, int n,
		  const CacheQueueItem *items, TransactionId wait_xid)
{
	uint32		prefixlen = strlen(prefix);
	int			slot = url_slot(url, strlen(url), true);
	Size		need = 0;
	EntryView	v;
	EntryView  *views;
	int			nviews;
	bool		ok;

	if (slot < 0)
		return false;
	for (int i = 0; i < n; i++)
		need += ENTRY_SIZE(prefixlen, items[i].len);

	/* the usual case: append, moving the entries back first if need be */
	if (need <= queue->capacity - (queue->tail - queue->head))
	{
		if (need > queue->capacity - queue->tail)
		{
			memmove(buffer, buffer + queue->head, queue->tail - queue->head);
			queue->tail -= queue->head;
			queue->head = 0;
		}
		for (int i = 0; i < n; i++)
		{
			item_view(&items[i], slot, prefix, prefixlen, wait_xid,
					  queue->next_seq++, &v);
			queue->tail += put_entry(buffer + queue->tail, &v);
		}
		queue->urls[slot].refs += n;
		pg_atomic_write_u64(&queue->count,
							pg_atomic_read_u64(&queue->count) + n);
		return true;
	}

	/* full: merge duplicates, then widen to namespaces and merge again */
	views = collect_views(n, &nviews);
	if (views == NULL)
		return false;
	for (int i = 0; i < n; i++)
		item_view(&items[i], slot, prefix, prefixlen, wait_xid,
				  queue->next_seq + i, &views[nviews + i]);
	ok = rebuild(views, nviews + n, WIDEN_NONE) ||
		rebuild(views, nviews + n, WIDEN_NAMESPACE);
	if (ok)
		queue->next_seq += n;
	pfree(views);
	return ok;
}

/* Appends one file record to buf. */
static void
record_append(StringInfo buf, CacheOpKind kind, const char *url,
			  uint32 urllen, const char *prefix, uint32 prefixlen,
			  const char *text, uint32 len, uint32 nslen)
{
	QueueRecord rec;
	int			start = buf->len;
	pg_crc32c	crc;

	rec.size = sizeof(QueueRecord) - RECORD_CRC_START + urllen + prefixlen + len;
	rec.crc = 0;
	rec.kind = (uint32) kind;
	rec.urllen = urllen;
	rec.prefixlen = prefixlen;
	rec.len = len;
	rec.nslen = Min(nslen, len);
	appendBinaryStringInfo(buf, (char *) &rec, sizeof(rec));
	appendBinaryStringInfo(buf, url, urllen);
	appendBinaryStringInfo(buf, prefix, prefixlen);
	appendBinaryStringInfo(buf, text, len);

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf->data + start + RECORD_CRC_START, rec.size);
	FIN_CRC32C(crc);
	memcpy(buf->data + start + offsetof(QueueRecord, crc), &crc, sizeof(crc));
}

/* Writes data; false (errno set) on failure. */
static bool
write_all(int fd, const char *data, Size len)
{
	errno = 0;
	if (write(fd, data, len) == (ssize_t) len)
		return true;
	/* a short write without an error means no space, as elsewhere in PG */
	if (errno == 0)
		errno = ENOSPC;
	return false;
}

/*
 * Rewrites the file from the queue in memory: a new file, fsync'd and
 * renamed over the old one.  Caller holds file_lock; pushes, which alone
 * add or move entries, therefore wait, and only the worker's removals from
 * the head can happen meanwhile (what they remove may still be written:
 * delivering it again after a crash is harmless).
 */
static bool
file_rewrite(void)
{
	QueueFileHeader header = {QUEUE_MAGIC, QUEUE_VERSION};
	char	   *snapshot = palloc_extended(queue->capacity, MCXT_ALLOC_HUGE);
	QueueUrl   *urls = palloc(sizeof(queue->urls));
	StringInfoData buf;
	uint32		len;
	uint64		written = 0;
	int			fd;
	bool		ok;

	LWLockAcquire(&queue->lock, LW_SHARED);
	len = queue->tail - queue->head;
	memcpy(snapshot, buffer + queue->head, len);
	memcpy(urls, queue->urls, sizeof(queue->urls));
	LWLockRelease(&queue->lock);

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (char *) &header, sizeof(header));
	fd = OpenTransientFile(QUEUE_TMP_FILE, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	ok = (fd >= 0);
	for (uint32 off = 0; ok && off < len;)
	{
		QueueEntry *e = (QueueEntry *) (snapshot + off);

		record_append(&buf, (CacheOpKind) e->kind,
					  urls[e->url].url, strlen(urls[e->url].url),
					  e->data, e->prefixlen,
					  e->data + e->prefixlen, e->len, e->nslen);
		off += e->size;
		if (buf.len >= WRITE_CHUNK)
		{
			ok = write_all(fd, buf.data, buf.len);
			written += buf.len;
			resetStringInfo(&buf);
		}
	}
	if (ok)
	{
		ok = write_all(fd, buf.data, buf.len);
		written += buf.len;
	}
	if (!ok)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", QUEUE_TMP_FILE)));
	if (fd >= 0 && CloseTransientFile(fd) != 0 && ok)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", QUEUE_TMP_FILE)));
		ok = false;
	}
	/* fsyncs the new file, renames it, fsyncs the directory */
	if (ok && durable_rename(QUEUE_TMP_FILE, QUEUE_FILE, WARNING) != 0)
		ok = false;

	pfree(buf.data);
	pfree(snapshot);
	pfree(urls);
	queue->file_rewrite = !ok;
	if (ok)
	{
		queue->file_bytes = queue->file_base = written;
		/* the new file is durable whole, appends not fsync'd included */
		pg_atomic_write_u64(&queue->dirty_since, 0);
	}
	return ok;
}

/*
 * Appends records to the file and fsyncs it (unless !sync: see
 * cache_queue_push_replayed).  Caller holds file_lock.
 */
static bool
file_append(StringInfo records, bool sync)
{
	int			fd;
	bool		ok;

	if (queue->file_rewrite)
		return file_rewrite();
	fd = OpenTransientFile(QUEUE_FILE, O_WRONLY | O_APPEND | PG_BINARY);
	if (fd < 0)
		return file_rewrite();	/* gone: make it again, whole */

	ok = write_all(fd, records->data, records->len);
	if (!ok)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", QUEUE_FILE)));
	else if (sync && pg_fsync(fd) != 0)
	{
		/*
		 * Unlike a data file this needs no PANIC: after a failed fsync the
		 * file is not trusted again, the next change writes a new one whole
		 * (what earlier pushes wrote was fsync'd when they returned).
		 */
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", QUEUE_FILE)));
		ok = false;
	}
	CloseTransientFile(fd);

	/* a partial record, or one maybe lost, must not stay in the file */
	if (!ok)
		queue->file_rewrite = true;
	else
	{
		queue->file_bytes += records->len;
		if (sync)
			pg_atomic_write_u64(&queue->dirty_since, 0);	/* all of it */
		else if (pg_atomic_read_u64(&queue->dirty_since) == 0)
			pg_atomic_write_u64(&queue->dirty_since,
								(uint64) GetCurrentTimestamp());
	}
	return ok;
}

static bool
push_items(int n, const CacheQueueItem *items, TransactionId wait_xid,
		   const char *prefix, bool sync)
{
	const char *url;
	StringInfoData records;
	bool		ok = false;
	int			procno = -1;

	if (queue == NULL)
		return false;
	if (n <= 0)
		return true;
	url = cache_redis_url_raw();
	if (url[0] == '\0' || strlen(url) >= MAX_URL_LEN)
		return false;

	/* everything that can fail with an ERROR comes before the locks */
	initStringInfo(&records);
	for (int i = 0; i < n; i++)
	{
		if (items[i].kind != CACHE_OP_KEY && items[i].kind != CACHE_OP_PREFIX &&
			items[i].kind != CACHE_OP_PATTERN && items[i].kind != CACHE_OP_ALL)
			elog(ERROR, "cannot queue an operation of kind %d", (int) items[i].kind);
		if (items[i].len < 0 || items[i].nslen < 0)
			elog(ERROR, "invalid length of a queued invalidation");
		record_append(&records, items[i].kind, url, strlen(url),
					  prefix, strlen(prefix),
					  items[i].text, items[i].len, items[i].nslen);
	}

	LWLockAcquire(&queue->file_lock, LW_EXCLUSIVE);

	/*
	 * The caller may catch an ERROR and go on (commit-time work does), so
	 * release file_lock here rather than leave it to transaction abort.
	 */
	PG_TRY();
	{
		LWLockAcquire(&queue->lock, LW_EXCLUSIVE);
		ok = queue_add(url, prefix, n, items, wait_xid);
		procno = queue->worker_procno;
		LWLockRelease(&queue->lock);
		if (ok)
			ok = file_append(&records, sync);
	}
	PG_CATCH();
	{
		if (LWLockHeldByMe(&queue->lock))
			LWLockRelease(&queue->lock);
		LWLockRelease(&queue->file_lock);
		PG_RE_THROW();
	}
	PG_END_TRY();
	LWLockRelease(&queue->file_lock);
	pfree(records.data);
	/* after queue_add: a near-cache fill either sees it or is voided */
	cache_near_void_queued(n, items);

	/* even if the file failed: what is in memory gets delivered sooner */
	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
	return ok;
}

bool
cache_queue_push(int n, const CacheQueueItem *items, TransactionId wait_xid)
{
	return push_items(n, items, wait_xid,
					  cache_key_prefix ? cache_key_prefix : "", true);
}

bool
cache_queue_push_replayed(int n, const CacheQueueItem *items,
						  TransactionId wait_xid, const char *key_prefix,
						  bool sync)
{
	return push_items(n, items, wait_xid, key_prefix, sync);
}

/*
 * fsyncs the file.  file_lock is held only to open it, not across the
 * fsync, so that pushes (replay's among them) do not wait for the disk:
 * the fsync makes durable everything written to the file before it
 * starts, and an append made after dirty_since is cleared sets it again.
 */
void
cache_queue_sync_file(void)
{
	int			fd;

	if (queue == NULL)
		return;
	LWLockAcquire(&queue->file_lock, LW_EXCLUSIVE);
	pg_atomic_write_u64(&queue->dirty_since, 0);
	fd = OpenTransientFile(QUEUE_FILE, O_WRONLY | PG_BINARY);
	if (fd < 0)
		queue->file_rewrite = true; /* gone: the worker makes it again */
	LWLockRelease(&queue->file_lock);
	if (fd < 0)
		return;
	if (pg_fsync(fd) != 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", QUEUE_FILE)));
		/* not trusted again: rewritten whole (cache_queue_maintain_file) */
		LWLockAcquire(&queue->file_lock, LW_EXCLUSIVE);
		queue->file_rewrite = true;
		LWLockRelease(&queue->file_lock);
	}
	CloseTransientFile(fd);
}

bool
cache_queue_sync_if_dirty(int min_age_ms, long *wait_ms)
{
	uint64		since;
	long		age_ms;

	if (queue == NULL || (since = pg_atomic_read_u64(&queue->dirty_since)) == 0)
		return false;
	age_ms = TimestampDifferenceMilliseconds((TimestampTz) since,
											 GetCurrentTimestamp());
	if (age_ms < min_age_ms)
	{
		if (wait_ms != NULL)
			*wait_ms = Min(*wait_ms, min_age_ms - age_ms);
		return false;
	}
	cache_queue_sync_file();
	return true;
}


/* ---- reading ---- */

/* Does entry e cover the Redis key rkey (key_prefix and key together)? */
static bool
entry_covers(const QueueEntry *e, const char *rkey, Size rkeylen)
{
	const char *text = e->data + e->prefixlen;
	const char *rest = rkey + e->prefixlen;
	Size		restlen = rkeylen - e->prefixlen;

	if (rkeylen < e->prefixlen || memcmp(rkey, e->data, e->prefixlen) != 0)
		return false;
	switch ((CacheOpKind) e->kind)
	{
		case CACHE_OP_KEY:
			return restlen == e->len && memcmp(rest, text, e->len) == 0;
		case CACHE_OP_PREFIX:
			return restlen >= e->len && memcmp(rest, text, e->len) == 0;
		case CACHE_OP_PATTERN:
			return cache_glob_match(text, e->len, rest, restlen);
		case CACHE_OP_ALL:
			return true;
		default:
			break;
	}
	return false;
}

/*
 * Entries are compared as Redis keys (key_prefix and key together), so an
 * entry queued under another key_prefix covers the same Redis key too.
 */
bool
cache_queue_covers(const char *key, int keylen)
{
	const char *url;
	const char *prefix;
	Size		prefixlen;
	char		local[CACHE_MAX_KEY_LEN + 256];
	char	   *rkey = local;
	Size		rkeylen;
	bool		covered = false;
	int			slot;

	if (!cache_queue_nonempty() || !cache_redis_configured())
		return false;
	url = cache_redis_url_raw();
	prefix = cache_key_prefix ? cache_key_prefix : "";
	prefixlen = strlen(prefix);
	rkeylen = prefixlen + keylen;
	if (rkeylen > sizeof(local))
		rkey = palloc(rkeylen);
	memcpy(rkey, prefix, prefixlen);
	memcpy(rkey + prefixlen, key, keylen);

	LWLockAcquire(&queue->lock, LW_SHARED);
	slot = url_slot(url, strlen(url), false);
	for (uint32 off = queue->head; slot >= 0 && off < queue->tail && !covered;
		 off += entry_at(off)->size)
		covered = (entry_at(off)->url == slot &&
				   entry_covers(entry_at(off), rkey, rkeylen));
	LWLockRelease(&queue->lock);

	if (rkey != local)
		pfree(rkey);
	return covered;
}


/* ---- the worker's side ---- */

void
cache_queue_attach_worker(int procno)
{
	LWLockAcquire(&queue->lock, LW_EXCLUSIVE);
	queue->worker_procno = procno;
	LWLockRelease(&queue->lock);
}

bool
cache_queue_head(CacheQueueHead *head)
{
	bool		found;

	LWLockAcquire(&queue->lock, LW_SHARED);
	found = queue->head < queue->tail;
	if (found)
	{
		QueueEntry *e = entry_at(queue->head);

		/* small copies: an ERROR here releases the lock on the way out */
		head->kind = (CacheOpKind) e->kind;
		head->url = pstrdup(queue->urls[e->url].url);
		head->prefix = pnstrdup(e->data, e->prefixlen);
		head->len = e->len;
		head->text = pnstrdup(e->data + e->prefixlen, e->len);
		head->wait_xid = e->wait_xid;
		head->seq = e->seq;
	}
	LWLockRelease(&queue->lock);
	return found;
}

bool
cache_queue_pop(uint64 seq)
{
	bool		popped = false;

	LWLockAcquire(&queue->lock, LW_EXCLUSIVE);

	/*
	 * A rebuild by a push meanwhile may have merged the head into a later
	 * entry: then the head has another number and stays, to be delivered.
	 */
	if (queue->head < queue->tail && entry_at(queue->head)->seq == seq)
	{
		QueueEntry *e = entry_at(queue->head);

		queue->urls[e->url].refs--;
		queue->head += e->size;
		if (queue->head == queue->tail)
			queue->head = queue->tail = 0;
		pg_atomic_write_u64(&queue->count,
							pg_atomic_read_u64(&queue->count) - 1);
		pg_atomic_fetch_add_u64(&queue->delivered, 1);
		popped = true;
	}
	LWLockRelease(&queue->lock);
	return popped;
}

/*
 * Keeps the file small: empty when the queue is, rewritten when it has
 * grown by more than the queue's size since it last was (pushes go on
 * appending while the worker removes what it delivers).
 */
void
cache_queue_maintain_file(void)
{
	const uint64 empty_size = sizeof(QueueFileHeader);
	int			fd;

	/* unlocked reads: a stale answer only delays this to the next call */
	if (!queue->file_rewrite &&
		(pg_atomic_read_u64(&queue->count) == 0 ?
		 queue->file_bytes <= empty_size :
		 queue->file_bytes - queue->file_base <= queue->capacity))
		return;

	LWLockAcquire(&queue->file_lock, LW_EXCLUSIVE);
	/* no push can add anything while file_lock is held */
	if (queue->file_rewrite ||
		(pg_atomic_read_u64(&queue->count) > 0 &&
		 queue->file_bytes - queue->file_base > queue->capacity))
		file_rewrite();
	else if (pg_atomic_read_u64(&queue->count) == 0 &&
			 queue->file_bytes > empty_size)
	{
		/*
		 * Not fsync'd: if the truncation is lost in a crash, what it removed
		 * is delivered again, which is harmless; and the fsync of the next
		 * append makes it durable with the file's new size.
		 */
		fd = OpenTransientFile(QUEUE_FILE, O_RDWR | PG_BINARY);
		if (fd < 0 || ftruncate(fd, empty_size) != 0)
		{
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not truncate file \"%s\": %m", QUEUE_FILE)));
			queue->file_rewrite = true;
		}
		else
			queue->file_bytes = queue->file_base = empty_size;
		if (fd >= 0)
			CloseTransientFile(fd);
	}
	LWLockRelease(&queue->file_lock);
}


/* ---- loading the file at start ---- */

/*
 * Reads the file into views[] (pointing into *data); stops at the first
 * record that is incomplete or does not match its CRC.  Returns how many,
 * and sets *good to the bytes that read well.
 */
static int
parse_file(char *data, Size size, EntryView **viewsp, Size *good)
{
	QueueFileHeader header;
	EntryView  *views;
	int			n = 0;
	Size		off = sizeof(QueueFileHeader);

	*good = 0;
	*viewsp = NULL;
	if (size < sizeof(header))
		return 0;
	memcpy(&header, data, sizeof(header));
	if (header.magic != QUEUE_MAGIC || header.version != QUEUE_VERSION)
	{
		ereport(WARNING,
				(errmsg("cache_ext: ignoring file \"%s\": not a queue file of this version",
						QUEUE_FILE),
				 errdetail("Redis keys invalidated before the restart may still be cached.")));
		return 0;
	}
	/* records take at least sizeof(QueueRecord) bytes each */
	views = palloc_extended((size / sizeof(QueueRecord) + 1) * sizeof(EntryView),
							MCXT_ALLOC_HUGE);
	*good = off;
	while (size - off >= sizeof(QueueRecord))
	{
		QueueRecord rec;
		pg_crc32c	crc;
		char	   *strings = data + off + sizeof(QueueRecord);
		int			slot;

		memcpy(&rec, data + off, sizeof(rec));
		if (rec.size < sizeof(QueueRecord) - RECORD_CRC_START ||
			rec.size > size - off - RECORD_CRC_START)
			break;
		INIT_CRC32C(crc);
		COMP_CRC32C(crc, data + off + RECORD_CRC_START, rec.size);
		FIN_CRC32C(crc);
		if (!EQ_CRC32C(crc, rec.crc) ||
			(uint64) rec.urllen + rec.prefixlen + rec.len !=
			rec.size - (sizeof(QueueRecord) - RECORD_CRC_START) ||
			rec.kind < CACHE_OP_KEY || rec.kind > CACHE_OP_ALL ||
			rec.urllen == 0)
			break;
		off += RECORD_CRC_START + rec.size;
		*good = off;

		slot = url_slot(strings, rec.urllen, true);
		if (slot < 0)
		{
			ereport(WARNING,
					(errmsg("cache_ext: too many Redis servers in file \"%s\"; an invalidation is dropped",
							QUEUE_FILE)));
			continue;
		}
		/* claimed now, so that the next record with this URL finds it */
		queue->urls[slot].refs++;
		views[n].kind = (CacheOpKind) rec.kind;
		views[n].url = slot;
		views[n].prefix = strings + rec.urllen;
		views[n].prefixlen = rec.prefixlen;
		views[n].text = strings + rec.urllen + rec.prefixlen;
		views[n].len = rec.len;
		views[n].nslen = Min(rec.nslen, rec.len);
		/* whatever it waited for ended with the server */
		views[n].wait_xid = InvalidTransactionId;
		views[n].seq = queue->next_seq++;
		n++;
	}
	*viewsp = views;
	return n;
}

static bool
read_all(int fd, char *data, Size len)
{
	ssize_t		rc;

	errno = EIO;				/* what a short read reports */
	rc = read(fd, data, len);
	return rc >= 0 && (Size) rc == len;
}

static void
queue_load(void)
{
	int			fd = OpenTransientFile(QUEUE_FILE, O_RDONLY | PG_BINARY);
	struct stat st;
	char	   *data = NULL;
	EntryView  *views;
	Size		good;
	int			n;

	/* until shown otherwise: a missing or damaged file is made anew */
	queue->file_rewrite = true;
	if (fd < 0 || fstat(fd, &st) != 0 ||
		!read_all(fd, data = palloc_extended(Max(st.st_size, 1), MCXT_ALLOC_HUGE),
				  st.st_size))
	{
		if (fd >= 0 || errno != ENOENT)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", QUEUE_FILE),
					 errdetail("Redis keys invalidated before the restart may still be cached.")));
		if (fd >= 0)
			CloseTransientFile(fd);
		return;
	}
	CloseTransientFile(fd);

	n = parse_file(data, st.st_size, &views, &good);
	queue->file_bytes = st.st_size;
	queue->file_base = 0;
	/* a torn tail must go before anything is appended after it */
	queue->file_rewrite = (good != (Size) st.st_size || good == 0);
	if (n == 0)
		return;

	if (!rebuild(views, n, WIDEN_NONE) &&
		!rebuild(views, n, WIDEN_NAMESPACE) &&
		!rebuild(views, n, WIDEN_ALL))
	{
		for (int i = 0; i < MAX_URLS; i++)
			queue->urls[i].refs = 0;
		ereport(WARNING,
				(errmsg("cache_ext: the %d Redis invalidations of file \"%s\" do not fit in cache_ext.queue_size",
						n, QUEUE_FILE),
				 errdetail("Redis keys invalidated before the restart may still be cached.")));
		return;
	}
	n = (int) pg_atomic_read_u64(&queue->count);
	ereport(LOG,
			(errmsg_plural("cache_ext: %d Redis invalidation queued before the restart is waiting for delivery",
						   "cache_ext: %d Redis invalidations queued before the restart are waiting for delivery",
						   n, n)));
}

/*
 * In the postmaster, when it creates shared memory: at start and after a
 * crash, which is when the file holds what the queue held.
 */
void
cache_queue_shmem_init(void)
{
	bool		found;

	queue = ShmemInitStruct("cache_ext invalidation queue",
							cache_queue_shmem_size(), &found);
	buffer = (char *) queue + MAXALIGN(sizeof(QueueShared));
	if (!found)
	{
		MemoryContext cxt;
		MemoryContext oldcxt;

		memset(queue, 0, sizeof(QueueShared));
		LWLockInitialize(&queue->lock, LWLockNewTrancheId());
		LWLockInitialize(&queue->file_lock, queue->lock.tranche);
		pg_atomic_init_u64(&queue->count, 0);
		pg_atomic_init_u64(&queue->delivered, 0);
		pg_atomic_init_u64(&queue->dirty_since, 0);
		queue->worker_procno = -1;
		queue->next_seq = 1;
		queue->capacity = (uint32) ((Size) queue_size_kb * 1024);

		cxt = AllocSetContextCreate(CurrentMemoryContext,
									"cache_ext queue load",
									ALLOCSET_DEFAULT_SIZES);
		oldcxt = MemoryContextSwitchTo(cxt);
		queue_load();
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
	}
	LWLockRegisterTranche(queue->lock.tranche, "cache_ext_queue");
}
