/*-------------------------------------------------------------------------
 *
 * coherence_wal.c
 *		Invalidations in WAL, for hot standbys and crash recovery.
 *
 * With cache_ext.wal_invalidations on, every committing transaction that
 * has invalidations (trigger-driven or explicit) writes one WAL record of
 * its own resource manager at PRE_COMMIT, before its commit record.  The
 * redo of that record, on a streaming standby and in crash recovery:
 *
 *	1. publishes the invalidations into the coherence ring, for the writing
 *	   transaction's XID and database (cache_ring_publish_replayed);
 *	2. applies them to the shared-memory store, in that database's
 *	   namespace (cache_shmem_invalidate_in);
 *	3. when this server has a Redis configured (its own cache_ext.redis_url
 *	   from its configuration file: the URL, which may hold a password, is
 *	   not written to WAL), pushes the Redis ones to the invalidation queue
 *	   under the writer's cache_ext.key_prefix (and this server's own, when
 *	   it differs), for the background worker to deliver once the
 *	   transaction is no longer in progress there.
 *
 * DESIGN CHOICES
 *
 * A custom resource manager rather than transactional logical messages
 * (LogLogicalMessage).  A logical message is only ever read by logical
 * decoding: a physical standby replays it as a no-op, so reading it back
 * would need a decoding slot and a process on each standby that decodes
 * its own received WAL, after replay, with no way to act at the point the
 * writing transaction becomes visible there, and with a slot that pins WAL
 * on the standby if that process stalls.  A resource manager's redo runs
 * in the startup process, in WAL order, on every standby and in crash
 * recovery, with nothing else to run.  Its cost: a server that replays the
 * record without cache_ext preloaded stops with "resource manager with ID
 * 128 not registered".  So the feature is off by default
 * (cache_ext.wal_invalidations, reloadable): load cache_ext on every
 * standby first, then turn it on at the primary (docs/standbys.md).  The
 * ID is RM_EXPERIMENTAL_ID, which the PostgreSQL wiki page
 * CustomWALResourceManagers reserves for development; CACHE_WAL_RMGR_ID
 * is the one place to change once an ID is registered there.
 *
 * Where to apply on the standby.  The contract asks that the standby
 * apply an invalidation where the writing transaction becomes visible
 * there, and refuse sets from snapshots that do not see it yet.  The
 * record comes before the commit record; its redo publishes into the ring
 * and then invalidates the store.  That is early, not late, and the
 * ring's snapshot check (I5 in coherence.c) makes it exact:
 *
 *	- before redoing any record, the startup process advances the next XID
 *	  past its XID and, in hot standby, records that XID as known-assigned
 *	  (RecordKnownAssignedTransactionIds), so a standby snapshot taken
 *	  before the commit record is replayed has the XID in its running set
 *	  (or at or after its xmax): XidInMVCCSnapshot() is true for it, and
 *	  the slot's next_xid is after its xmin, so the scan reaches the slot.
 *	  A set from such a snapshot, checked after the publish, is refused;
 *	- a set checked before the publish stored its value before the store
 *	  is invalidated (step 2 follows step 1), or is found by the set's
 *	  second lease check (I4), which follows its store;
 *	- a snapshot taken after the commit record is replayed sees the new
 *	  rows: what it computes is current.
 *
 * So no second application at visibility is needed for the shared-memory
 * store.  For Redis, values that other servers' readers of the old rows
 * stored meanwhile are removed by the queued delivery, which waits for the
 * XID to stop being in progress on this server (TransactionIdIsInProgress
 * reads KnownAssignedXids during recovery; after promotion they are
 * expired and the XID reads as finished).  Before hot standby accepts
 * connections (crash recovery, or a standby not yet consistent), no reader
 * of this server exists and the queue delivers at once.
 *
 * Redo never raises an ERROR and never waits for Redis: errors are
 * reported as WARNINGs; a queue that is full even after widening to
 * namespaces loses the Redis part of that record (WARNING: values cached
 * from the old rows can then stay until their TTL), never replay.
 *
 * Crash recovery on the primary replays the same records: every Redis
 * invalidation of a transaction whose record is after the redo point is
 * queued again and delivered before anything else the worker does, which
 * covers a crash between a commit and its commit-time repeat.
 *
 * Durability.  Replayed pushes are written to the queue file but not
 * fsync'd one by one, which would cap replay at the disk's fsync rate: the
 * worker fsyncs the file at most CACHE_QUEUE_SYNC_MS after an unsynced
 * push, the startup process itself once one is CACHE_QUEUE_SYNC_REPLAY_MS
 * old (a worker stuck on a slow Redis), and rm_cleanup at the end of
 * recovery, before the end-of-recovery checkpoint.  A PostgreSQL crash
 * loses nothing (the data is in the kernel's page cache, and a crash
 * during recovery replays the records anyway).  Only an operating-system
 * crash can lose pushes, and only those not yet fsync'd, i.e. made in the
 * last ~100 ms, whose records a restartpoint completed in those same
 * ~100 ms has moved the redo point past: restartpoints offer no hook to
 * fsync first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "access/xlogrecovery.h"
#include "access/xlogutils.h"
#include "cache.h"
#include "coherence_ring.h"
#include "coherence_wal.h"
#include "invalq.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define CACHE_WAL_RMGR_ID	RM_EXPERIMENTAL_ID
#define CACHE_WAL_RMGR_NAME "cache_ext"

/* record types (the high bits of xl_info) */
#define XLOG_CACHE_INVALIDATE	0x00

/*
 * A record's operations are widened to their namespaces when they take
 * more than this; a namespace is never widened further.  Widening empties
 * whole namespaces on every standby, so the bound is high: 1 MB holds
 * about 10,000 keys of 100 bytes (a 2,000-row UPDATE is written key by
 * key), far below what PostgreSQL can write and read back as one record
 * (about 1 GB: MaxAllocSize, for the reader's buffer), and costs a standby one parse of it per transaction that large.
 */
#define MAX_RECORD_BYTES	(1024 * 1024)

/*
 * The record: this header, key_prefix (prefixlen bytes), then nops
 * operations, each an unaligned CacheWalOpHeader and its text.  The XID is
 * the record's own (XLogRecGetXid).  An operation names the stores it
 * applies to as a mask, so that a trigger's invalidation of both stores
 * (one operation per store in coherence.c) is written once.
 */
typedef struct xl_cache_invalidate
{
	Oid			dbid;
	uint32		nops;
	uint16		prefixlen;		/* cache_ext.key_prefix of the writer */
} xl_cache_invalidate;

#define SizeOfCacheInvalidate (offsetof(xl_cache_invalidate, prefixlen) + sizeof(uint16))

typedef struct CacheWalOpHeader
{
	uint8		stores_kind;	/* mask of (1 << CacheBackend) << 4 | kind */
	uint16		len;
	uint16		nslen;
} CacheWalOpHeader;

#define SizeOfCacheWalOpHeader (sizeof(uint8) + 2 * sizeof(uint16))
#define ALL_STORES_MASK ((1 << CACHE_NUM_STORES) - 1)

/* an operation of a record, being written or read */
typedef struct WalItem
{
	uint8		stores;			/* mask of 1 << CacheBackend */
	CacheOpKind kind;
	int			len;
	int			nslen;
	const char *text;
} WalItem;

/*
 * Redo's WARNINGs come at most once per this interval per kind, with how
 * many were not logged since: a standby replaying a burst of records into
 * a full queue, or records it cannot apply, would otherwise log one per
 * record.
 */
#define REDO_WARNING_INTERVAL_MS 10000

typedef struct RedoWarningLimit
{
	TimestampTz last;			/* when one was last logged, 0 for never */
	int64		suppressed;		/* not logged since */
} RedoWarningLimit;

static RedoWarningLimit warn_queue_full;
static RedoWarningLimit warn_failed;	/* errors, unknown or bad records */

bool		cache_wal_invalidations = false;

static bool registered = false;
static MemoryContext redo_cxt = NULL;

/* ---- the primary: writing the record ---- */

bool
cache_wal_enabled(void)
{
	return registered && cache_wal_invalidations && !RecoveryInProgress();
}

static int
item_cmp(const void *a, const void *b)
{
	const WalItem *x = a;
	const WalItem *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->text, y->text, x->len);
}

/*
 * Widen each operation to its namespace (a key template's text before its
 * first placeholder): a record of a transaction that wrote very many keys
 * stays small, and removes nothing outside the namespaces it wrote.
 */
static void
widen_to_namespaces(int n, WalItem *items)
{
	for (int i = 0; i < n; i++)
	{
		if (items[i].nslen < items[i].len && items[i].kind != CACHE_OP_ALL)
		{
			items[i].kind = items[i].nslen > 0 ? CACHE_OP_PREFIX : CACHE_OP_ALL;
			items[i].len = items[i].nslen;
		}
	}
}

/* Merge identical operations into one, with the union of their stores. */
static int
merge_items(int n, WalItem *items)
{
	int			kept = 0;

	qsort(items, n, sizeof(WalItem), item_cmp);
	for (int i = 0; i < n; i++)
	{
		if (kept > 0 && item_cmp(&items[kept - 1], &items[i]) == 0)
		{
			items[kept - 1].stores |= items[i].stores;
			items[kept - 1].nslen = Min(items[kept - 1].nslen, items[i].nslen);
		}
		else
			items[kept++] = items[i];
	}
	return kept;
}

static Size
record_size(int n, const WalItem *items, int prefixlen)
{
	Size		size = SizeOfCacheInvalidate + prefixlen;

	for (int i = 0; i < n; i++)
		size += SizeOfCacheWalOpHeader + items[i].len;
	return size;
}

void
cache_wal_log(int n, const CacheWalOp *ops)
{
	xl_cache_invalidate xlrec;
	char		local[512];
	char	   *data;
	char	   *p;
	Size		size;
	WalItem    *items;
	const char *prefix = "";
	bool		redis = false;

	if (n == 0 || !cache_wal_enabled())
		return;
	items = palloc(n * sizeof(WalItem));
	for (int i = 0; i < n; i++)
	{
		items[i].stores = (uint8) (1 << ops[i].store);
		items[i].kind = ops[i].kind;
		items[i].text = ops[i].text;
		items[i].len = ops[i].len;
		items[i].nslen = Min(ops[i].nslen, ops[i].len);
		if (ops[i].store == CACHE_BACKEND_REDIS)
			redis = true;
		/* keys and prefixes are at most 1024 bytes: this only guards */
		if (items[i].len > PG_UINT16_MAX)
		{
			items[i].kind = CACHE_OP_PREFIX;
			items[i].len = items[i].nslen = Min(items[i].nslen, CACHE_MAX_KEY_LEN);
		}
	}
	if (redis && cache_key_prefix != NULL)
		prefix = cache_key_prefix;
	if (strlen(prefix) > PG_UINT16_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cache_ext.key_prefix is too long to be written to WAL")));
	if (record_size(n, items, strlen(prefix)) > MAX_RECORD_BYTES)
		widen_to_namespaces(n, items);
	if (n > 1)
		n = merge_items(n, items);

	xlrec.dbid = MyDatabaseId;
	xlrec.nops = n;
	xlrec.prefixlen = strlen(prefix);

	/* most records are a few dozen bytes: no allocation for them */
	size = record_size(n, items, xlrec.prefixlen);
	data = (size <= sizeof(local)) ? local : palloc(size);
	p = data;
	memcpy(p, &xlrec, SizeOfCacheInvalidate);
	p += SizeOfCacheInvalidate;
	memcpy(p, prefix, xlrec.prefixlen);
	p += xlrec.prefixlen;
	for (int i = 0; i < n; i++)
	{
		uint8		sk = (uint8) ((items[i].stores << 4) | items[i].kind);
		uint16		len = (uint16) items[i].len;
		uint16		nslen = (uint16) items[i].nslen;

		*p++ = (char) sk;
		memcpy(p, &len, sizeof(len));
		p += sizeof(len);
		memcpy(p, &nslen, sizeof(nslen));
		p += sizeof(nslen);
		memcpy(p, items[i].text, items[i].len);
		p += items[i].len;
	}
	Assert(p == data + size);

	XLogBeginInsert();
	XLogRegisterData(data, size);
	(void) XLogInsert(CACHE_WAL_RMGR_ID, XLOG_CACHE_INVALIDATE);
	if (data != local)
		pfree(data);
	pfree(items);
}

/* ---- standbys and crash recovery: replaying it ---- */

/*
 * May a WARNING of this kind be logged now?  If so, *suppressed is how
 * many were not since the last one, to be said with it.
 */
static bool
redo_warning_allowed(RedoWarningLimit *limit, int64 *suppressed)
{
	TimestampTz now = GetCurrentTimestamp();

	if (limit->last != 0 &&
		!TimestampDifferenceExceeds(limit->last, now, REDO_WARNING_INTERVAL_MS))
	{
		limit->suppressed++;
		return false;
	}
	*suppressed = limit->suppressed;
	limit->suppressed = 0;
	limit->last = now;
	return true;
}

#define SUPPRESSED_CONTEXT \
	"%lld more warnings like this one about replayed WAL records were not logged since the previous one (at most one is logged every %d s)"

/* errcontext() for the count, when there is one */
static int
redo_warning_context(int64 suppressed)
{
	if (suppressed > 0)
		errcontext(SUPPRESSED_CONTEXT, (long long) suppressed,
				   REDO_WARNING_INTERVAL_MS / 1000);
	return 0;
}


/* A record parsed in place; texts point into the record. */
typedef struct ParsedRecord
{
	Oid			dbid;
	TransactionId xid;
	const char *prefix;
	int			nops;
	WalItem    *ops;
} ParsedRecord;

static bool
parse_record(XLogReaderState *record, ParsedRecord *p)
{
	const char *data = XLogRecGetData(record);
	Size		size = XLogRecGetDataLen(record);
	xl_cache_invalidate xlrec;
	Size		off;

	if (size < SizeOfCacheInvalidate)
		return false;
	memcpy(&xlrec, data, SizeOfCacheInvalidate);
	off = SizeOfCacheInvalidate;
	if (size - off < xlrec.prefixlen || xlrec.nops > size)
		return false;
	p->dbid = xlrec.dbid;
	p->xid = XLogRecGetXid(record);
	p->prefix = pnstrdup(data + off, xlrec.prefixlen);
	off += xlrec.prefixlen;
	p->nops = xlrec.nops;
	p->ops = palloc(Max(p->nops, 1) * sizeof(WalItem));
	for (int i = 0; i < p->nops; i++)
	{
		uint8		sk;
		uint16		len;
		uint16		nslen;
		int			stores;
		int			kind;

		if (size - off < SizeOfCacheWalOpHeader)
			return false;
		memcpy(&sk, data + off, sizeof(sk));
		memcpy(&len, data + off + 1, sizeof(len));
		memcpy(&nslen, data + off + 3, sizeof(nslen));
		off += SizeOfCacheWalOpHeader;
		stores = sk >> 4;
		kind = sk & 0x0f;
		if (size - off < len || stores == 0 || (stores & ~ALL_STORES_MASK) ||
			kind < CACHE_OP_KEY || kind > CACHE_OP_ALL)
			return false;
		p->ops[i].stores = (uint8) stores;
		p->ops[i].kind = (CacheOpKind) kind;
		p->ops[i].text = data + off;
		p->ops[i].len = len;
		p->ops[i].nslen = Min(nslen, len);
		off += len;
	}
	return off == size;
}

#define HAS_STORE(item, st) (((item)->stores & (1 << (st))) != 0)

/* Hand the record's Redis invalidations to the worker; never waits. */
static void
queue_redis(const ParsedRecord *p)
{
	CacheQueueItem *items = palloc(Max(p->nops, 1) * sizeof(CacheQueueItem));
	int			n = 0;
	TransactionId wait_xid;
	bool		ok;
	int64		suppressed;

	for (int i = 0; i < p->nops; i++)
	{
		if (!HAS_STORE(&p->ops[i], CACHE_BACKEND_REDIS))
			continue;
		items[n].kind = p->ops[i].kind;
		items[n].text = p->ops[i].text;
		items[n].len = p->ops[i].len;
		items[n].nslen = p->ops[i].nslen;
		n++;
	}
	if (n == 0)
		return;

	/*
	 * A hot standby that serves reads delivers once the transaction is
	 * visible there (see the top of this file); before that, no reader of
	 * this server exists and delivering at once is as good.
	 */
	wait_xid = (standbyState == STANDBY_SNAPSHOT_READY) ?
		p->xid : InvalidTransactionId;

	/*
	 * Not fsync'd here (see "Durability" at the top of this file): the
	 * worker fsyncs the file within CACHE_QUEUE_SYNC_MS, this process
	 * itself when the worker has not for CACHE_QUEUE_SYNC_REPLAY_MS (busy
	 * with a slow Redis), and rm_cleanup at the end of recovery.
	 */
	ok = cache_queue_push_replayed(n, items, wait_xid, p->prefix, false);

	/*
	 * A server whose own cache_ext.key_prefix differs (a standby that keeps
	 * its values apart in a shared Redis) invalidates its own namespace too:
	 * nothing else would.
	 */
	if (cache_key_prefix != NULL && strcmp(cache_key_prefix, p->prefix) != 0)
		ok = cache_queue_push_replayed(n, items, wait_xid, cache_key_prefix,
									   false) && ok;
	(void) cache_queue_sync_if_dirty(CACHE_QUEUE_SYNC_REPLAY_MS, NULL);
	if (!ok && redo_warning_allowed(&warn_queue_full, &suppressed))
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cache_ext: could not queue the Redis invalidations of replayed transaction %u",
						p->xid),
				 errdetail("The invalidation queue is full even with its entries widened to their namespaces; values cached from the old rows can stay in Redis until they expire."),
				 errhint("Raise cache_ext.queue_size, and check that the Redis server of cache_ext.redis_url answers."),
				 redo_warning_context(suppressed)));
}

static void
apply_record(const ParsedRecord *p)
{
	CacheRingItem *items = palloc(Max(p->nops, 1) * CACHE_NUM_STORES *
								  sizeof(CacheRingItem));
	int			n = 0;
	bool		has_redis = false;

	/*
	 * 1: the ring first, so that a set that races with step 2 is refused.
	 * Not in crash recovery (nor on a standby without hot_standby), where
	 * no session exists before every replayed transaction has ended.
	 */
	for (int i = 0; i < p->nops && standbyState != STANDBY_DISABLED; i++)
		for (int st = 0; st < CACHE_NUM_STORES; st++)
			if (HAS_STORE(&p->ops[i], st))
			{
				items[n].store = (CacheBackend) st;
				items[n].kind = p->ops[i].kind;
				items[n].text = p->ops[i].text;
				items[n].len = p->ops[i].len;
				n++;
			}
	if (n > 0)
		cache_ring_publish_replayed(p->dbid, p->xid, n, items);

	/* 2: the shared-memory store, in the writer's database */
	for (int i = 0; i < p->nops; i++)
		if (HAS_STORE(&p->ops[i], CACHE_BACKEND_SHMEM))
			(void) cache_shmem_invalidate_in(p->dbid, p->ops[i].kind,
											 p->ops[i].text, p->ops[i].len);

	/* 3: Redis, through the queue, when this server has one */
	for (int i = 0; i < p->nops; i++)
		if (HAS_STORE(&p->ops[i], CACHE_BACKEND_REDIS))
			has_redis = true;
	if (has_redis && cache_redis_configured())
		queue_redis(p);
}

static void
cache_wal_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	MemoryContext oldcxt;
	ParsedRecord p;
	int64		suppressed;

	if (redo_cxt == NULL)
		redo_cxt = AllocSetContextCreate(TopMemoryContext, "cache_ext redo",
										 ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(redo_cxt);

	/*
	 * An ERROR in the startup process would stop replay, and with it the
	 * standby: report it as a WARNING and go on, which at worst leaves
	 * values that expire by their TTL.
	 */
	PG_TRY();
	{
		if (info != XLOG_CACHE_INVALIDATE)
		{
			if (redo_warning_allowed(&warn_failed, &suppressed))
				ereport(WARNING,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("cache_ext: skipped a WAL record of unknown type %u", info),
						 errhint("The primary may run a newer cache_ext: install the same version on this server."),
						 redo_warning_context(suppressed)));
		}
		else if (!parse_record(record, &p))
		{
			if (redo_warning_allowed(&warn_failed, &suppressed))
				ereport(WARNING,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("cache_ext: skipped a malformed WAL record of invalidations"),
						 redo_warning_context(suppressed)));
		}
		else
			apply_record(&p);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(redo_cxt);
		/* redo holds no lock of its own between records */
		LWLockReleaseAll();
		edata = CopyErrorData();
		FlushErrorState();
		if (redo_warning_allowed(&warn_failed, &suppressed))
		{
			if (suppressed > 0)
			{
				char	   *more = psprintf(SUPPRESSED_CONTEXT,
											(long long) suppressed,
											REDO_WARNING_INTERVAL_MS / 1000);

				edata->context = edata->context ?
					psprintf("%s\n%s", edata->context, more) : more;
			}
			edata->elevel = WARNING;
			ThrowErrorData(edata);
		}
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(redo_cxt);
}

static void
cache_wal_desc(StringInfo buf, XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	xl_cache_invalidate xlrec;

	if (info != XLOG_CACHE_INVALIDATE ||
		XLogRecGetDataLen(record) < SizeOfCacheInvalidate)
		return;
	memcpy(&xlrec, XLogRecGetData(record), SizeOfCacheInvalidate);
	appendStringInfo(buf, "db %u; %u invalidations", xlrec.dbid, xlrec.nops);
}

static const char *
cache_wal_identify(uint8 info)
{
	if ((info & ~XLR_INFO_MASK) == XLOG_CACHE_INVALIDATE)
		return "INVALIDATE";
	return NULL;
}

/*
 * Start of redo.  On a server that will accept reads during recovery, the
 * ring must refuse sets that could miss a transaction whose record came
 * before the replay's start (cache_ring_set_replay_start).  Not in crash
 * recovery: no session runs before the end of recovery, by when every
 * transaction before the start has ended, as the primary's own.
 */
static void
cache_wal_startup(void)
{
	if (ArchiveRecoveryRequested && EnableHotStandby)
		cache_ring_set_replay_start(ReadNextTransactionId());
}

/*
 * End of redo (crash recovery, promotion, end of a point-in-time
 * recovery): make what replay queued durable before the end-of-recovery
 * checkpoint moves the redo point past its records.
 */
static void
cache_wal_cleanup(void)
{
	RedoWarningLimit *limits[] = {&warn_queue_full, &warn_failed};

	/*
	 * Unconditionally: the worker clears the dirty mark as its own fsync
	 * starts, and that fsync may not have finished (or may have failed).
	 */
	cache_queue_sync_file();

	/* the rest of the count that redo_warning_allowed() kept */
	for (int i = 0; i < lengthof(limits); i++)
		if (limits[i]->suppressed > 0)
			ereport(WARNING,
					(errmsg("cache_ext: %lld more warnings about replayed WAL records were not logged",
							(long long) limits[i]->suppressed)));
}

static RmgrData cache_rmgr = {
	.rm_name = CACHE_WAL_RMGR_NAME,
	.rm_redo = cache_wal_redo,
	.rm_desc = cache_wal_desc,
	.rm_identify = cache_wal_identify,
	.rm_startup = cache_wal_startup,
	.rm_cleanup = cache_wal_cleanup,
	.rm_mask = NULL,
	.rm_decode = NULL
};

void
cache_wal_define_gucs(void)
{
	DefineCustomBoolVariable("cache_ext.wal_invalidations",
							 "Writes each committing transaction's cache invalidations to WAL, for hot standbys and crash recovery.",
							 "Every server that replays this WAL (standbys, and this one after a crash) must load cache_ext in shared_preload_libraries before this is turned on.",
							 &cache_wal_invalidations,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
}

void
cache_wal_init(void)
{
	RegisterCustomRmgr(CACHE_WAL_RMGR_ID, &cache_rmgr);
	registered = true;
}
