/*-------------------------------------------------------------------------
 *
 * redis_tracking.c
 *		Redis server-assisted client tracking, held by the cache_ext worker,
 *		and the barrier that lets a session wait until the worker has
 *		consumed every notification of the writes Redis executed before it.
 *
 * The worker holds one tracking session on the server-wide
 * cache_ext.redis_url (as the worker sees it; a reload that changes it, or
 * cache_ext.key_prefix, replaces the session).  It is a single connection:
 *
 *		CLIENT ID
 *		CLIENT TRACKING on REDIRECT <its own id> BCAST [PREFIX <key_prefix>]
 *		SUBSCRIBE __redis__:invalidate
 *
 * Redis 7.0 accepts a redirection to the connection itself, and in RESP2
 * (hiredis 0.14 speaks nothing else) delivers the notifications as Pub/Sub
 * messages on that channel: an array of the keys modified (written,
 * deleted, expired or evicted), or nil for a FLUSHDB/FLUSHALL.  Every key
 * goes to the near-cache (near_cache.c) and to the key directory
 * (redis_keydir.c).  The connection is only ever read in non-blocking mode,
 * between the worker's other tasks (and between the round trips of a long
 * queued delivery), through the worker's wait on its socket; the only
 * thing written to it once subscribed is a PING now and then.
 *
 * The epoch (cache_tracking_epoch()) is 0 while no session is live, and a
 * new non-zero number once one is fully set up (subscribed).  On loss it
 * is set to 0 before the near-cache and the directory are emptied, so that
 * no reader trusts either while the stream is broken.
 *
 * A connection can die silently (a network path lost without a reset):
 * nothing arrives, and a near-cache would serve its entries for as long as
 * TCP keepalive takes.  So the worker sends PING twice a second (RESP2
 * allows it in subscribed mode; the answer is ["pong", ""]) and drops the
 * session when no answer arrives within cache_ext.redis_command_timeout.
 * Each time the worker has read everything that had arrived (not merely a
 * reply: after a stall the rest of the backlog may still be unread), it
 * stamps a heartbeat in shared memory: readers take the epoch through
 * cache_tracking_live_epoch(), which answers 0 once the last
 * heartbeat is older than HEARTBEAT_MAX_MS plus the command timeout (the
 * worker busy elsewhere, or stuck), whether or not it dropped the session.
 * Pinging twice as often as that leaves a late wake-up of the worker half
 * a second before readers stop trusting the stream.
 *
 * The barrier.  In BCAST mode Redis does not send a notification as it
 * executes a write: it gathers the keys per tracked prefix and broadcasts
 * them once per event-loop iteration, before sleeping
 * (trackingBroadcastInvalidationMessages(), called from beforeSleep()),
 * whereas a PUBLISH is delivered at once: a PUBLISH can overtake the
 * notification of a key written in the same iteration.  So the barrier is
 * a write: the session writes and unlinks a key of its own under the
 * tracked prefix, key_prefix || "cache_ext:barrier:<nonce>:<procno>:<seq>",
 * in one round trip.  The nonce is drawn at random when shared memory is
 * set up: another PostgreSQL server sharing the Redis (and the prefix)
 * writes barriers of its own under the same prefix, and they must not pass
 * for ours; nor may a sequence number we never issued (a forged or stale
 * key), which could otherwise disable the barriers of that slot for good.
 * Its notification goes out in the same broadcast as any key written
 * before it, or a later one, and a connection's messages arrive in order;
 * once the worker has consumed it, it has consumed every earlier write's.
 * The worker records the highest sequence number seen per process and sets
 * that process's latch, after noting every other key of the same message
 * in the directory.  Sequence numbers come from a shared
 * counter per PGPROC slot, so a late notification of an earlier, abandoned
 * barrier never passes for a later one.  A session looks for its answer a
 * little while before sleeping on its latch; the worker, delivering a
 * queued invalidation, passes its own barrier by reading the stream itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <poll.h>
#include <sched.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "access/twophase.h"
#include "cache_ext.h"
#include "invalq.h"
#include "miscadmin.h"
#include "near_cache.h"
#include "portability/instr_time.h"
#include "postmaster/interrupt.h"
#include "port/atomics.h"
#include "redis_conn.h"
#include "redis_keydir.h"
#include "redis_tracking.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* after a failed attempt, the next one waits this long */
#define TRACKING_RETRY_MS	1000

#define INVALIDATE_CHANNEL	"__redis__:invalidate"
#define BARRIER_TAG			"cache_ext:barrier:"

#define WHAT_TRACKING		"track keys"

/* hex digits of the nonce that tells this server's barrier keys apart */
#define NONCE_LEN			16

/* how long a session looks for its barrier before sleeping on its latch */
#define BARRIER_SPIN_US		200

/* how often the worker PINGs the tracking connection */
#define PING_INTERVAL_MS	500
/* a heartbeat older than this plus the command timeout is not trusted */
#define HEARTBEAT_MAX_MS	1000

/* socket reads per turn of the worker's loop */
#define READ_ROUNDS			64

typedef struct BarrierSlot
{
	pg_atomic_uint64 issued;	/* last sequence number handed out */
	pg_atomic_uint64 seen;		/* highest one the worker consumed */
} BarrierSlot;

typedef struct TrackingShared
{
	pg_atomic_uint64 epoch;		/* 0: no live tracking session */
	pg_atomic_uint64 consumed;	/* notifications consumed, ever */
	pg_atomic_uint64 heartbeat;	/* TimestampTz the worker last caught up */
	pg_atomic_uint32 timeout_ms;	/* the worker's redis_command_timeout */
	uint64		generation;		/* epochs handed out; worker only */
	pg_atomic_uint32 worker_procno;	/* the worker's PGPROC, or INVALID */
	char		nonce[NONCE_LEN + 1];	/* in our barrier keys: hex, random */
	int			nslots;
	BarrierSlot slots[FLEXIBLE_ARRAY_MEMBER];	/* by pgprocno */
} TrackingShared;

#define NO_WORKER	PG_UINT32_MAX

static TrackingShared *tracking = NULL;

/* ---- the worker's state ---- */
static RedisConnSlot tslot;		/* the tracking connection, set aside */
static bool tlive = false;		/* tslot.conn is set up and subscribed */
static char *turl = NULL;		/* the settings it was opened with */
static char *tprefix = NULL;
static TimestampTz tretry_at = 0;
static bool tfailing = false;	/* the last attempt failed (logged once) */
static bool am_worker = false;
static TimestampTz ping_sent = 0;	/* a PING awaits its answer since then */
static TimestampTz ping_next = 0;	/* when to send the next one */


/* ---- settings and shared memory ---- */

static int
barrier_slots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

void
cache_tracking_define_gucs(void)
{
	cache_keydir_define_gucs();
}

Size
cache_tracking_shmem_size(void)
{
	Size		size;

	size = add_size(offsetof(TrackingShared, slots),
					mul_size(barrier_slots(), sizeof(BarrierSlot)));
	return add_size(MAXALIGN(size), cache_keydir_shmem_size());
}

void
cache_tracking_shmem_init(void)
{
	bool		found;
	uint8		rnd[NONCE_LEN / 2];

	tracking = ShmemInitStruct("cache_ext tracking",
							   offsetof(TrackingShared, slots) +
							   barrier_slots() * sizeof(BarrierSlot),
							   &found);
	if (!found)
	{
		pg_atomic_init_u64(&tracking->epoch, 0);
		pg_atomic_init_u64(&tracking->consumed, 0);
		pg_atomic_init_u64(&tracking->heartbeat, 0);
		pg_atomic_init_u32(&tracking->timeout_ms, 0);
		tracking->generation = 0;
		pg_atomic_init_u32(&tracking->worker_procno, NO_WORKER);
		if (!pg_strong_random(rnd, sizeof(rnd)))
			ereport(FATAL,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random cache_ext barrier nonce")));
		for (int i = 0; i < (int) sizeof(rnd); i++)
			snprintf(tracking->nonce + 2 * i, 3, "%02x", rnd[i]);
		tracking->nslots = barrier_slots();
		for (int i = 0; i < tracking->nslots; i++)
		{
			pg_atomic_init_u64(&tracking->slots[i].issued, 0);
			pg_atomic_init_u64(&tracking->slots[i].seen, 0);
		}
	}
	cache_keydir_shmem_init();
}

uint64
cache_tracking_epoch(void)
{
	if (tracking == NULL)
		return 0;
	return pg_atomic_read_u64(&tracking->epoch);
}

/*
 * The epoch, for readers that serve what the stream vouches for (near-cache
 * hits, the directory): 0 also when the worker has read nothing from the
 * tracking connection, not even the answer to its PING, for longer than
 * HEARTBEAT_MAX_MS plus the worker's cache_ext.redis_command_timeout.
 */
uint64
cache_tracking_live_epoch(void)
{
	uint64		epoch;
	TimestampTz heartbeat;
	TimestampTz now;
	struct timespec ts;

	if (tracking == NULL)
		return 0;
	epoch = pg_atomic_read_u64(&tracking->epoch);
	if (epoch == 0)
		return 0;
	pg_read_barrier();
	heartbeat = (TimestampTz) pg_atomic_read_u64(&tracking->heartbeat);

	/*
	 * On every near-cache hit: the coarse clock costs a fraction of
	 * gettimeofday(), and a few milliseconds behind matter nothing here.
	 */
	if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) == 0)
		now = ((TimestampTz) ts.tv_sec -
			   ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) *
			USECS_PER_SEC + ts.tv_nsec / 1000;
	else
		now = GetCurrentTimestamp();
	/*
	 * The worker's command timeout, not this session's: the worker is the
	 * one that waits for the PING's answer.
	 */
	if (now - heartbeat >
		(TimestampTz) (HEARTBEAT_MAX_MS +
					   pg_atomic_read_u32(&tracking->timeout_ms)) * 1000)
		return 0;
	return epoch;
}

uint64
cache_tracking_consumed(void)
{
	return tracking ? pg_atomic_read_u64(&tracking->consumed) : 0;
}

/* Wakes the worker (a namespace to fill). */
void
cache_tracking_wake_worker(void)
{
	uint32		procno;

	if (tracking == NULL)
		return;
	procno = pg_atomic_read_u32(&tracking->worker_procno);
	if (procno != NO_WORKER)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
}


static bool worker_barrier_wait(uint64 seq, uint64 epoch,
								TimestampTz deadline);


/* ---- the barrier, on the session's side ---- */

/*
 * The name of a new barrier key under this session's cache_ext.key_prefix,
 * palloc'd, and its sequence number.
 */
char *
cache_tracking_barrier_key(size_t *len, uint64 *seq)
{
	char	   *key;

	Assert(tracking != NULL);
	*seq = pg_atomic_add_fetch_u64(&tracking->slots[MyProc->pgprocno].issued, 1);
	key = psprintf("%s" BARRIER_TAG "%s:%d:" UINT64_FORMAT,
				   cache_key_prefix, tracking->nonce, MyProc->pgprocno, *seq);
	*len = strlen(key);
	return key;
}

/*
 * Waits until the worker has consumed the notification of barrier "seq",
 * written while the epoch was "epoch".  False when the deadline passes,
 * the tracking session is lost or replaced meanwhile, or this process is
 * asked to stop or cancel (after commit, when interrupts are held, a
 * cancel gives the wait up rather than being served): the caller then
 * falls back to SCAN.
 */
bool
cache_tracking_barrier_wait(uint64 seq, uint64 epoch, TimestampTz deadline)
{
	BarrierSlot *slot = &tracking->slots[MyProc->pgprocno];
	instr_time	start;

	if (am_worker)
		return worker_barrier_wait(seq, epoch, deadline);

	/*
	 * The worker usually answers within tens of microseconds: look for it
	 * a little while, yielding the CPU, before sleeping on the latch (whose
	 * wake-up costs about as much again).
	 */
	INSTR_TIME_SET_CURRENT(start);
	for (;;)
	{
		instr_time	now;

		if (pg_atomic_read_u64(&slot->seen) >= seq)
			return pg_atomic_read_u64(&tracking->epoch) == epoch;
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		if (INSTR_TIME_GET_MICROSEC(now) > BARRIER_SPIN_US)
			break;
		sched_yield();
	}

	for (;;)
	{
		long		secs;
		int			usecs;
		long		ms;

		if (pg_atomic_read_u64(&slot->seen) >= seq)
			return pg_atomic_read_u64(&tracking->epoch) == epoch;
		if (pg_atomic_read_u64(&tracking->epoch) != epoch)
			return false;
		TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
		ms = secs * 1000 + (usecs + 999) / 1000;
		if (ms <= 0)
			return false;

		/* a lost session does not set our latch: look again now and then */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(ms, 100), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (QueryCancelPending || ProcDiePending)
			return false;
	}
}


/* ---- the worker's tracking session ---- */

/*
 * Whether key names one of our barriers; if so, *procno and *seq say whose.
 * A barrier of another server (another nonce), or with a sequence number
 * that slot never issued, is not ours.
 */
static bool
parse_barrier(const char *key, size_t len, int *procno, uint64 *seq)
{
	size_t		plen = strlen(tprefix);
	size_t		taglen = plen + strlen(BARRIER_TAG) + NONCE_LEN + 1;
	char		buf[64];
	char	   *end;
	long		p;

	if (len <= taglen || len - taglen >= sizeof(buf) ||
		memcmp(key, tprefix, plen) != 0 ||
		memcmp(key + plen, BARRIER_TAG, strlen(BARRIER_TAG)) != 0 ||
		memcmp(key + plen + strlen(BARRIER_TAG), tracking->nonce,
			   NONCE_LEN) != 0 ||
		key[taglen - 1] != ':')
		return false;
	memcpy(buf, key + taglen, len - taglen);
	buf[len - taglen] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return false;
	errno = 0;
	p = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || *end != ':' ||
		p < 0 || p >= tracking->nslots ||
		end[1] < '0' || end[1] > '9')
		return false;
	errno = 0;
	*seq = strtou64(end + 1, &end, 10);
	if (errno != 0 || *end != '\0' ||
		*seq > pg_atomic_read_u64(&tracking->slots[p].issued))
		return false;
	*procno = (int) p;
	return true;
}

/* Records that barrier seq of procno has passed, and wakes its session. */
static void
pass_barrier(int procno, uint64 seq)
{
	BarrierSlot *slot = &tracking->slots[procno];

	for (;;)
	{
		uint64		old = pg_atomic_read_u64(&slot->seen);

		if (old >= seq ||
			pg_atomic_compare_exchange_u64(&slot->seen, &old, seq))
			break;
	}
	SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/* One message of the subscription: an invalidation, or something to skip. */
static void
consume_message(redisReply *r)
{
	redisReply *payload;
	uint64		seq;
	const char **keys;
	size_t	   *lens;
	int		   *procnos;
	uint64	   *seqs;
	int			n = 0;
	int			nbarriers = 0;

	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		r->element[0]->type == REDIS_REPLY_STRING &&
		strcmp(r->element[0]->str, "pong") == 0)
	{
		ping_sent = 0;
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
		r->element[0]->type != REDIS_REPLY_STRING ||
		strcmp(r->element[0]->str, "message") != 0 ||
		r->element[1]->type != REDIS_REPLY_STRING ||
		strcmp(r->element[1]->str, INVALIDATE_CHANNEL) != 0)
		return;					/* a subscribe confirmation */

	payload = r->element[2];
	seq = pg_atomic_add_fetch_u64(&tracking->consumed, 1);
	if (payload->type == REDIS_REPLY_NIL)
	{
		/* FLUSHDB or FLUSHALL, on any database of that Redis */
		cache_near_invalidate_all();
		cache_keydir_flushed();
		return;
	}
	if (payload->type != REDIS_REPLY_ARRAY || payload->elements == 0)
		return;
	keys = palloc(payload->elements * sizeof(char *));
	lens = palloc(payload->elements * sizeof(size_t));
	procnos = palloc(payload->elements * sizeof(int));
	seqs = palloc(payload->elements * sizeof(uint64));
	for (size_t i = 0; i < payload->elements; i++)
	{
		redisReply *k = payload->element[i];

		if (k->type != REDIS_REPLY_STRING)
			continue;
		if (parse_barrier(k->str, k->len, &procnos[nbarriers], &seqs[nbarriers]))
		{
			nbarriers++;
			continue;
		}
		cache_near_invalidate_key(k->str, k->len);
		keys[n] = k->str;
		lens[n++] = k->len;
	}
	cache_keydir_note_keys(n, keys, lens, seq);

	/*
	 * Only now: a barrier's session reads the directory as soon as it
	 * wakes, and the keys written before its barrier may be anywhere in
	 * this message (Redis sends them sorted).
	 */
	for (int i = 0; i < nbarriers; i++)
		pass_barrier(procnos[i], seqs[i]);
	pfree(keys);
	pfree(lens);
	pfree(procnos);
	pfree(seqs);
}

/* Closes the tracking connection, if any; the near-cache forgets all. */
static void
drop_session(const char *reason)
{
	bool		was_live = tlive;
	char	   *why = reason ? pstrdup(reason) : NULL;	/* may be in conn */

	pg_atomic_write_u64(&tracking->epoch, 0);
	pg_memory_barrier();
	tlive = false;
	cache_near_invalidate_all();
	cache_keydir_reset(NULL, NULL);
	if (tslot.conn != NULL)
	{
		redis_conn_switch(&tslot);
		redis_conn_close();
		redis_conn_switch(&tslot);
	}
	if (was_live && why != NULL)
		ereport(LOG,
				(errmsg("cache_ext worker: lost the tracking connection to Redis at %s: %s",
						cache_redis_show_url(), why),
				 errdetail("Invalidations fall back to SCAN until the key directory is rebuilt.")));
	tretry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											TRACKING_RETRY_MS);
}

/* Opens the tracking session; false (and retried later) on failure. */
static bool
open_session(void)
{
	const char *id_argv[2] = {"CLIENT", "ID"};
	size_t		id_len[2] = {6, 2};
	const char *sub_argv[2] = {"SUBSCRIBE", INVALIDATE_CHANNEL};
	size_t		sub_len[2] = {9, strlen(INVALIDATE_CHANNEL)};
	const char *tr_argv[8];
	size_t		tr_len[8];
	int			tr_argc = 0;
	char		idbuf[32];
	redisReply *reply;
	bool		ok = false;
	char	   *why = NULL;

	if (turl)
		pfree(turl);
	if (tprefix)
		pfree(tprefix);
	turl = MemoryContextStrdup(TopMemoryContext, cache_redis_url_raw());
	tprefix = MemoryContextStrdup(TopMemoryContext, cache_key_prefix);

	redis_conn_switch(&tslot);
	reply = redis_command(WHAT_TRACKING, 2, id_argv, id_len);
	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
	{
		snprintf(idbuf, sizeof(idbuf), "%lld", reply->integer);
		freeReplyObject(reply);
		tr_argv[tr_argc] = "CLIENT";
		tr_len[tr_argc++] = 6;
		tr_argv[tr_argc] = "TRACKING";
		tr_len[tr_argc++] = 8;
		tr_argv[tr_argc] = "on";
		tr_len[tr_argc++] = 2;
		tr_argv[tr_argc] = "REDIRECT";
		tr_len[tr_argc++] = 8;
		tr_argv[tr_argc] = idbuf;
		tr_len[tr_argc++] = strlen(idbuf);
		tr_argv[tr_argc] = "BCAST";
		tr_len[tr_argc++] = 5;
		if (tprefix[0] != '\0')
		{
			tr_argv[tr_argc] = "PREFIX";
			tr_len[tr_argc++] = 6;
			tr_argv[tr_argc] = tprefix;
			tr_len[tr_argc++] = strlen(tprefix);
		}
		reply = redis_command(WHAT_TRACKING, tr_argc, tr_argv, tr_len);
		if (reply != NULL)
		{
			freeReplyObject(reply);
			reply = redis_command(WHAT_TRACKING, 2, sub_argv, sub_len);
			if (reply != NULL)
			{
				ok = (reply->type == REDIS_REPLY_ARRAY);
				freeReplyObject(reply);
				if (!ok)
					why = pstrdup("unexpected reply to SUBSCRIBE");
			}
		}
	}
	else if (reply != NULL)
	{
		freeReplyObject(reply);
		why = pstrdup("unexpected reply to CLIENT ID");
	}
	if (!ok)
	{
		if (why == NULL)
			why = pstrdup(redis_conn_error());
		redis_conn_close();
	}
	redis_conn_switch(&tslot);

	if (!ok)
	{
		if (!tfailing)
			ereport(LOG,
					(errmsg("cache_ext worker: could not start tracking keys on Redis at %s: %s",
							cache_redis_show_url(), why),
					 errdetail("Invalidations use SCAN meanwhile; retrying every second.")));
		tfailing = true;
		tretry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												TRACKING_RETRY_MS);
		return false;
	}

	if (tfailing)
		ereport(LOG,
				(errmsg("cache_ext worker: tracking keys on Redis at %s",
						cache_redis_show_url())));
	tfailing = false;

	/* the socket is only ever waited on for reading from now on */
	if (tslot.socket_event != WL_SOCKET_READABLE)
	{
		ModifyWaitEvent(tslot.events, tslot.socket_pos, WL_SOCKET_READABLE, NULL);
		tslot.socket_event = WL_SOCKET_READABLE;
	}

	/* whatever was cached or listed before may have changed unseen */
	cache_near_invalidate_all();
	cache_keydir_reset(turl, tprefix);
	if (++tracking->generation == 0)
		tracking->generation = 1;
	ping_sent = 0;
	ping_next = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											PING_INTERVAL_MS);
	pg_atomic_write_u32(&tracking->timeout_ms,
						(uint32) cache_redis_command_timeout);
	pg_atomic_write_u64(&tracking->heartbeat, (uint64) GetCurrentTimestamp());
	pg_memory_barrier();
	pg_atomic_write_u64(&tracking->epoch, tracking->generation);
	tlive = true;
	return true;
}

/*
 * Consumes what has arrived on the tracking connection without blocking:
 * what hiredis has buffered, then the socket while it has data, up to
 * READ_ROUNDS reads (hiredis reads 16kB at a time) so that a flood of
 * notifications does not starve the worker's other tasks.
 */
static void
read_messages(void)
{
	redisContext *c = tslot.conn;
	TimestampTz now;
	int			ready;

	for (int round = 0;; round++)
	{
		struct pollfd pfd;

		for (;;)
		{
			void	   *reply = NULL;

			if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
			{
				drop_session(c->errstr[0] ? c->errstr : "protocol error");
				return;
			}
			if (reply == NULL)
				break;
			consume_message((redisReply *) reply);
			freeReplyObject(reply);
		}
		if (round == READ_ROUNDS)
			return;
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		now = GetCurrentTimestamp();
		ready = poll(&pfd, 1, 0);
		if (ready == 0)
		{
			/*
			 * Caught up: everything Redis sent before "now" has been
			 * consumed.  Only then is the stream fresh; a reply parsed after
			 * a stall, with more of the backlog still unread, is not.
			 */
			pg_atomic_write_u64(&tracking->heartbeat, (uint64) now);
			return;
		}
		if (ready < 0)
			return;
		if (redisBufferRead(c) != REDIS_OK)
		{
			drop_session(c->err == REDIS_ERR_EOF ? "connection closed by Redis" :
						 (c->errstr[0] ? c->errstr : "read error"));
			return;
		}
	}
}

/*
 * Sends a PING when due, and drops the session when the last one has not
 * been answered within cache_ext.redis_command_timeout.  *timeout is
 * lowered to when this needs to run again.
 */
static void
ping_session(long *timeout)
{
	redisContext *c = tslot.conn;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz due;
	long		secs;
	int			usecs;
	int			done = 0;

	if (!tlive)
		return;
	pg_atomic_write_u32(&tracking->timeout_ms,
						(uint32) cache_redis_command_timeout);
	if (ping_sent != 0)
	{
		due = TimestampTzPlusMilliseconds(ping_sent, cache_redis_command_timeout);
		if (now >= due)
		{
			drop_session(psprintf("no answer to PING within %d ms",
								  cache_redis_command_timeout));
			*timeout = Min(*timeout, TRACKING_RETRY_MS);
			return;
		}
	}
	else if (now >= ping_next)
	{
		/* a few bytes: the socket's buffer takes them unless it is full */
		if (redisAppendCommand(c, "PING") != REDIS_OK)
		{
			drop_session(c->errstr[0] ? c->errstr : "could not queue PING");
			*timeout = Min(*timeout, TRACKING_RETRY_MS);
			return;
		}
		ping_sent = now;
		ping_next = TimestampTzPlusMilliseconds(now, PING_INTERVAL_MS);
		due = TimestampTzPlusMilliseconds(now, cache_redis_command_timeout);
	}
	else
		due = ping_next;

	/* send what is pending (this PING, or the rest of an earlier one) */
	if (sdslen(c->obuf) > 0 && redisBufferWrite(c, &done) != REDIS_OK)
	{
		drop_session(c->errstr[0] ? c->errstr : "write error");
		*timeout = Min(*timeout, TRACKING_RETRY_MS);
		return;
	}
	TimestampDifference(now, due, &secs, &usecs);
	*timeout = Min(*timeout, secs * 1000 + (usecs + 999) / 1000);
}

/*
 * The worker's own barrier, for a queued delivery through the directory:
 * it consumes the notifications itself, reading the tracking socket until
 * its barrier has passed.
 */
static bool
worker_barrier_wait(uint64 seq, uint64 epoch, TimestampTz deadline)
{
	BarrierSlot *slot = &tracking->slots[MyProc->pgprocno];
	bool		latch_set = false;
	bool		passed = false;

	for (;;)
	{
		long		secs;
		int			usecs;
		long		ms;
		WaitEvent	ev;

		if (!tlive || pg_atomic_read_u64(&tracking->epoch) != epoch ||
			ShutdownRequestPending)
			break;
		if (pg_atomic_read_u64(&slot->seen) >= seq)
		{
			passed = true;
			break;
		}
		TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
		ms = secs * 1000 + (usecs + 999) / 1000;
		if (ms <= 0)
			break;
		if (WaitEventSetWait(tslot.events, ms, &ev, 1, PG_WAIT_EXTENSION) == 1 &&
			(ev.events & WL_LATCH_SET))
		{
			/* a push or a signal: the main loop sees to it afterwards */
			ResetLatch(MyLatch);
			latch_set = true;
		}
		read_messages();
	}
	if (latch_set)
		SetLatch(MyLatch);
	return passed;
}

/*
 * The worker's tracking work for one turn of its loop: (re)connects when
 * due, consumes what arrived, and advances the directory's fill by a step.
 * *timeout is lowered to when it next needs to run.
 */
void
cache_tracking_worker_poll(long *timeout)
{
	if (tracking == NULL)
		return;
	am_worker = true;
	pg_atomic_write_u32(&tracking->worker_procno, MyProc->pgprocno);

	/* a reload changed what to track */
	if (tslot.conn != NULL &&
		(strcmp(turl, cache_redis_url_raw()) != 0 ||
		 strcmp(tprefix, cache_key_prefix) != 0))
	{
		drop_session(NULL);
		tretry_at = 0;
	}

	if (tslot.conn == NULL)
	{
		if (!cache_redis_configured())
			return;
		if (GetCurrentTimestamp() < tretry_at || !open_session())
		{
			long		secs;
			int			usecs;

			TimestampDifference(GetCurrentTimestamp(), tretry_at, &secs, &usecs);
			*timeout = Min(*timeout, secs * 1000 + (usecs + 999) / 1000);
			return;
		}
	}
	read_messages();
	if (tslot.conn == NULL)
	{
		/* lost just now: try again when due */
		*timeout = Min(*timeout, TRACKING_RETRY_MS);
		return;
	}
	ping_session(timeout);
	if (tslot.conn == NULL)
		return;
	if (tlive && cache_keydir_fill_step())
		*timeout = 0;
}

/*
 * For long work in the worker (a queued invalidation walking a large
 * keyspace with SCAN), between its round trips: consumes what arrived on
 * the tracking connection and PINGs it when due, so that notifications,
 * the sessions' barriers and the heartbeat keep flowing.  Does nothing in
 * other processes.
 */
void
cache_tracking_worker_service(void)
{
	long		timeout = 0;

	if (!am_worker)
		return;
	/* replayed pushes wait for the worker's fsync (coherence_wal.c) */
	(void) cache_queue_sync_if_dirty(CACHE_QUEUE_SYNC_MS, NULL);
	if (tslot.conn == NULL)
		return;
	read_messages();
	if (tslot.conn != NULL)
		ping_session(&timeout);
}

/*
 * The worker's wait: its latch, and the tracking socket while a session is
 * open.
 */
void
cache_tracking_worker_wait(long timeout)
{
	if (tslot.conn != NULL)
	{
		WaitEvent	ev;

		(void) WaitEventSetWait(tslot.events, Max(timeout, 0), &ev, 1,
								PG_WAIT_EXTENSION);
	}
	else
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(timeout, 1), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

/* The worker is exiting: no one may trust the stream any more. */
void
cache_tracking_worker_exit(void)
{
	if (tracking == NULL)
		return;
	pg_atomic_write_u32(&tracking->worker_procno, NO_WORKER);
	if (tslot.conn != NULL || tlive)
		drop_session(NULL);
}
