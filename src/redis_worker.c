/*-------------------------------------------------------------------------
 *
 * redis_worker.c
 *		The background worker that delivers the invalidation queue
 *		(invalq.c) to Redis, oldest first, as soon as Redis answers.
 *
 * One worker per server, started with the postmaster and restarted a few
 * seconds after it fails.  It needs no database: it sends each entry
 * through the Redis store itself (cache_redis_store), after pointing
 * cache_ext.redis_url and cache_ext.key_prefix at the entry's own, and
 * tells success from failure by cache_store_failures, with on_error set to
 * "ignore" so that a Redis outage does not fill the log.  An entry is
 * removed from the queue only once Redis has taken it, so a failure leaves
 * it, and everything queued after it, for the next try about a second
 * later (the store itself does not reconnect more often).
 *
 * An entry queued just before its transaction's commit record carries that
 * transaction's XID and waits for it to end: delivered earlier, it could be
 * followed by a reader caching rows the commit is about to replace.
 *
 * Backends set our latch when they push; we also wake every second while
 * something waits.
 *
 * The same loop holds the Redis tracking session (redis_tracking.c) for the
 * server-wide cache_ext.redis_url and fills the key directory
 * (redis_keydir.c): each turn consumes what the tracking socket holds
 * without blocking, delivers at most one queued entry, and runs at most one
 * SCAN step of the directory's fill, each bounded by the command timeout,
 * so that none of these waits on another for long.  A delivery sets the
 * entry's settings only for its own duration (RESET afterwards), so that
 * between deliveries this process's settings are the server-wide ones,
 * which the tracking session and the fill use, and a reload applies.  The
 * Redis URL of an entry holds its password: messages show the store's
 * masked form of it (cache_redis_show_url()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "invalq.h"
#include "miscadmin.h"
#include "redis_tracking.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void cache_worker_main(Datum main_arg);

/* after a failed delivery, the next try waits this long */
#define RETRY_MS			1000
/* how often to look whether a pushing transaction has ended */
#define XACT_POLL_MS		10
/* the longest sleep, even with nothing queued */
#define IDLE_MS				10000

typedef enum DeliveryResult
{
	DELIVERED,
	FAILED,
	UNDELIVERABLE
} DeliveryResult;

void
cache_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;

	/* no database needed: deliver what the file held while recovery runs */
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 3;
	strlcpy(worker.bgw_library_name, "cache_ext", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "cache_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "cache_ext worker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "cache_ext worker", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

static void
detach_worker(int code, Datum arg)
{
	/* an ERROR (a FATAL here: no handler) may have left a lock held */
	LWLockReleaseAll();
	cache_queue_attach_worker(-1);
	cache_tracking_worker_exit();
}

/*
 * Sets a string setting for one delivery if it differs from its value
 * (*changed then says so); false if refused.
 */
static bool
use_setting(const char *name, const char *value, const char *current,
			bool *changed)
{
	*changed = false;
	if (strcmp(current, value) == 0)
		return true;
	/* the URL's check hook never quotes the value in its messages */
	if (set_config_option(name, value, PGC_SUSET, PGC_S_SESSION,
						  GUC_ACTION_SET, true, WARNING, false) <= 0)
		return false;
	*changed = true;
	return true;
}

/*
 * Back to the server's setting, as after RESET: its parsed form (the URL
 * with its password) is kept with it, and a later reload applies again.
 */
static void
reset_setting(const char *name)
{
	(void) set_config_option(name, NULL, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, WARNING, false);
}

/* the masked URL of the last delivery, for the messages about it */
static char *delivery_url = NULL;

/* Delivers an entry under its own settings, then restores the server's. */
static DeliveryResult
deliver(const CacheQueueHead *head)
{
	const CacheStore *store = &cache_redis_store;
	uint64		failures;
	bool		url_changed;
	bool		prefix_changed = false;
	DeliveryResult result;

	if (!use_setting("cache_ext.redis_url", head->url, cache_redis_url_raw(),
					 &url_changed) ||
		!use_setting("cache_ext.key_prefix", head->prefix, cache_key_prefix,
					 &prefix_changed))
		result = UNDELIVERABLE;
	else
	{
		result = DELIVERED;
		failures = cache_store_failures;
		switch (head->kind)
		{
			case CACHE_OP_KEY:
				store->del(head->text, head->len);
				break;
			case CACHE_OP_PREFIX:
				store->invalidate_prefix(head->text, head->len);
				break;
			case CACHE_OP_PATTERN:
				store->invalidate_pattern(head->text, head->len);
				break;
			case CACHE_OP_ALL:
				store->flush();
				break;
			default:
				result = UNDELIVERABLE;
				break;
		}
		if (result == DELIVERED && cache_store_failures != failures)
			result = FAILED;
	}
	if (delivery_url == NULL || strcmp(delivery_url, cache_redis_show_url()) != 0)
	{
		if (delivery_url)
			pfree(delivery_url);
		delivery_url = MemoryContextStrdup(TopMemoryContext, cache_redis_show_url());
	}
	if (url_changed)
		reset_setting("cache_ext.redis_url");
	if (prefix_changed)
		reset_setting("cache_ext.key_prefix");
	return result;
}

/*
 * Is the transaction that queued an item still running?  Not
 * TransactionIdIsInProgress() alone: its first test compares the XID with
 * RecentXmin, which this worker never sets (it takes no snapshot), so every
 * XID in the upper half of the XID space would count as finished and its
 * items would be delivered before the commit.
 */
static bool
still_running(TransactionId xid)
{
	RecentXmin = GetOldestTransactionIdConsideredRunning();
	return TransactionIdIsInProgress(xid);
}

static long
ms_until(TimestampTz when)
{
	long		secs;
	int			usecs;

	TimestampDifference(GetCurrentTimestamp(), when, &secs, &usecs);
	return secs * 1000 + (usecs + 999) / 1000;
}

void
cache_worker_main(Datum main_arg)
{
	MemoryContext cxt;
	bool		failing = false;
	int64		delivered = 0;	/* since the queue was last empty */
	TimestampTz retry_at = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	if (!cache_queue_available())
		proc_exit(0);
	cache_queue_attach_worker(MyProc->pgprocno);
	before_shmem_exit(detach_worker, (Datum) 0);

	SetConfigOption("cache_ext.on_error", "ignore", PGC_SUSET, PGC_S_OVERRIDE);
	cxt = AllocSetContextCreate(TopMemoryContext, "cache_ext worker",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);

	while (!ShutdownRequestPending)
	{
		CacheQueueHead head;
		long		timeout = IDLE_MS;
		long		tracking_timeout = IDLE_MS;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(cxt);
		cache_queue_maintain_file();
		cache_tracking_worker_poll(&tracking_timeout);

		if (!cache_queue_head(&head))
		{
			if (delivered > 0)
				ereport(LOG,
						(errmsg_plural("cache_ext worker: delivered %lld queued invalidation; the queue is empty",
									   "cache_ext worker: delivered %lld queued invalidations; the queue is empty",
									   delivered, (long long) delivered)));
			delivered = 0;
		}
		else if (retry_at != 0 && (timeout = ms_until(retry_at)) > 0)
		{
			/* woken by a push during the pause: Redis is no readier */
		}
		else if (TransactionIdIsValid(head.wait_xid) &&
				 still_running(head.wait_xid))
			timeout = XACT_POLL_MS;
		else
		{
			switch (deliver(&head))
			{
				case DELIVERED:
					if (failing)
						ereport(LOG,
								(errmsg("cache_ext worker: Redis at %s answers again; delivering the queued invalidations",
										delivery_url),
								 errdetail_plural("%lld invalidation was waiting.",
												  "%lld invalidations were waiting.",
												  cache_queue_length(),
												  (long long) cache_queue_length())));
					failing = false;
					retry_at = 0;
					if (cache_queue_pop(head.seq))
						delivered++;
					timeout = 0;
					break;
				case FAILED:
					if (!failing)
						ereport(LOG,
								(errmsg("cache_ext worker: could not deliver queued invalidations to Redis at %s; retrying every second",
										delivery_url),
								 errdetail_plural("%lld invalidation is waiting.",
												  "%lld invalidations are waiting.",
												  cache_queue_length(),
												  (long long) cache_queue_length())));
					failing = true;
					retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   RETRY_MS);
					timeout = RETRY_MS;
					break;
				case UNDELIVERABLE:
					/* a URL this build cannot parse: no retry would help */
					ereport(WARNING,
							(errmsg("cache_ext worker: dropped a queued invalidation whose Redis settings are not accepted")));
					cache_queue_pop(head.seq);
					timeout = 0;
					break;
			}
		}

		/* replayed pushes are not fsync'd one by one (coherence_wal.c) */
		(void) cache_queue_sync_if_dirty(CACHE_QUEUE_SYNC_MS, &timeout);
		cache_tracking_worker_wait(Min(timeout, tracking_timeout));
	}

	/*
	 * Exit status 1 has the postmaster start us again, unless it is shutting
	 * down: the queue must not stay undelivered after a stray SIGTERM.
	 * Replayed pushes not fsync'd yet are made durable first.
	 */
	(void) cache_queue_sync_if_dirty(0, NULL);
	proc_exit(1);
}
