/*-------------------------------------------------------------------------
 *
 * store_redis.c
 *		The Redis store: values are plain Redis strings under
 *		cache_ext.key_prefix || key, with native TTLs, so that any other
 *		Redis client (an application's own cache) shares them.
 *
 * Every call is one round trip on this process's connection (redis_conn.c),
 * except the bulk removals.  Those take the keys from the key directory
 * (redis_keydir.c) when it covers the prefix, after a barrier through the
 * tracking stream (redis_tracking.c), and UNLINK them in batches: their cost
 * follows the keys removed, not the keyspace.  Otherwise they walk the
 * keyspace with SCAN ... MATCH ... COUNT and remove what each step found
 * with UNLINK, pipelined with the next SCAN: no single command blocks Redis
 * for long, whatever the size of the keyspace.  Every argument goes to Redis
 * as a binary-safe bulk string; no key or value is ever formatted into a
 * command.
 *
 * Failures are reported where they are found (cache_store_failure, which
 * follows cache_ext.on_error); the store functions then only answer a miss,
 * "not stored" or "nothing removed".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <hiredis/hiredis.h>

#include "cache_ext.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "near_cache.h"
#include "redis_conn.h"
#include "redis_keydir.h"
#include "redis_tracking.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

/* ---- the store ---- */

/*
 * Keys SCAN examines per step (Redis 7.0 stops a step once it has gathered
 * COUNT keys, before MATCH filters them).  Measured with SLOWLOG on a
 * 2-core machine: a step takes Redis 0.2-0.5 ms on average and at most
 * about 1 ms, among 100k keys or 1M, and an UNLINK of what it found under
 * 0.15 ms, so nothing blocks Redis for long.  COUNT 2000 puts 10-35% of
 * the steps over 1 ms and 5000 two thirds, for no measurable gain: the
 * time is Redis' own work per key examined (dictScan, MATCH), the same as
 * a server-side SCAN+UNLINK script's, not round trips (about 10%) nor our
 * handling of the replies (about 1%).  COUNT 500 is 45% slower on 1M keys.
 */
#define SCAN_COUNT "1000"
/* 2^20 steps of 1000: a billion keys, far more than one Redis holds */
#define MAX_SCAN_STEPS (1 << 20)

#define WHAT_GET		"read a value"
#define WHAT_SET		"store a value"
#define WHAT_DEL		"delete a key"
#define WHAT_INVALIDATE	"invalidate keys"
#define WHAT_TTL		"read a TTL"
#define WHAT_FLUSH		"flush"
#define WHAT_SIZE		"read its size"

/* The Redis key of a cache key: cache_ext.key_prefix || key, palloc'd. */
static char *
redis_key(const char *key, int keylen, size_t *len)
{
	size_t		prefixlen = strlen(cache_key_prefix);
	char	   *buf = palloc(prefixlen + keylen);

	memcpy(buf, cache_key_prefix, prefixlen);
	memcpy(buf + prefixlen, key, keylen);
	*len = prefixlen + keylen;
	return buf;
}

/*
 * A string reply as text, or NULL when it is not valid text in the
 * database encoding (another client wrote bytes, or a NUL, that PostgreSQL
 * cannot hold as text): the caller reports that after freeing the reply,
 * as bad_value(), and the key reads as absent.
 */
static text *
reply_text(const redisReply *reply, redisReply *owner)
{
	text	   *t;

	if (memchr(reply->str, '\0', reply->len) != NULL ||
		!pg_verifymbstr(reply->str, reply->len, true))
		return NULL;
	t = palloc_extended(VARHDRSZ + reply->len, MCXT_ALLOC_NO_OOM);
	if (t == NULL)
	{
		freeReplyObject(owner);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on a value of %zu bytes from Redis.",
						   reply->len)));
	}
	SET_VARSIZE(t, VARHDRSZ + reply->len);
	memcpy(VARDATA(t), reply->str, reply->len);
	return t;
}

/* Reports values that reply_text() refused; they read as misses. */
static void
bad_value(int n)
{
	const char *detail;

	if (n == 1)
		detail = psprintf("A value in Redis is not valid text in encoding \"%s\".",
						  GetDatabaseEncodingName());
	else
		detail = psprintf("%d values in Redis are not valid text in encoding \"%s\".",
						  n, GetDatabaseEncodingName());
	cache_store_failure(CACHE_BACKEND_REDIS, WHAT_GET, detail);
}

/* A one-key command (GET, UNLINK, TTL); its reply or NULL after a failure. */
static redisReply *
key_command(const char *what, const char *cmd, const char *key, int keylen)
{
	const char *argv[2];
	size_t		argvlen[2];
	redisReply *reply;

	argv[0] = cmd;
	argvlen[0] = strlen(cmd);
	argv[1] = redis_key(key, keylen, &argvlen[1]);
	reply = redis_command(what, 2, argv, argvlen);
	pfree((char *) argv[1]);
	return reply;
}

/* An integer reply, freed; false (and reported) if it is not one. */
static bool
integer_reply(const char *what, redisReply *reply, long long *result)
{
	if (reply == NULL)
		return false;
	if (reply->type != REDIS_REPLY_INTEGER)
	{
		redis_unexpected_reply(what, reply);
		return false;
	}
	*result = reply->integer;
	freeReplyObject(reply);
	return true;
}

/*
 * A GET reply as a value, freed: NULL when absent, or when it is not valid
 * text (reported, as bad_value()) or not a string (reported).
 */
static text *
value_reply(redisReply *reply)
{
	text	   *value = NULL;

	if (reply->type == REDIS_REPLY_STRING)
	{
		value = reply_text(reply, reply);
		if (value == NULL)
		{
			freeReplyObject(reply);
			bad_value(1);
			return NULL;
		}
	}
	else if (reply->type != REDIS_REPLY_NIL)
	{
		redis_unexpected_reply(WHAT_GET, reply);
		return NULL;
	}
	freeReplyObject(reply);
	return value;
}

/* PTTL's answer, freed; -2 (absent) when it is not an integer */
static long long
pttl_reply(redisReply *reply)
{
	long long	pttl = (reply->type == REDIS_REPLY_INTEGER) ? reply->integer : -2;

	freeReplyObject(reply);
	return pttl;
}

/*
 * A near-cache hit answers without Redis.  On a miss that fills the
 * near-cache, PTTL goes with GET, in the same round trip.
 */
static text *
redis_get(const char *key, int keylen)
{
	const char *get[2] = {"GET", NULL};
	const char *pttl[2] = {"PTTL", NULL};
	size_t		getlen[2] = {3, 0};
	size_t		pttllen[2] = {4, 0};
	RedisCmd	cmds[2] = {{2, get, getlen}, {2, pttl, pttllen}};
	redisReply *replies[2];
	NearFill	fill;
	text	   *value;

	get[1] = pttl[1] = redis_key(key, keylen, &getlen[1]);
	pttllen[1] = getlen[1];
	value = cache_near_get(get[1], getlen[1], &fill);
	if (value == NULL && redis_run(WHAT_GET, fill.active ? 2 : 1, cmds, replies))
	{
		long long	ms = fill.active ? pttl_reply(replies[1]) : -2;

		value = value_reply(replies[0]);
		cache_near_complete(&fill, get[1], getlen[1], key, keylen,
							value ? VARDATA(value) : NULL,
							value ? VARSIZE(value) - VARHDRSZ : 0, ms);
	}
	/* after a failure: drop the placeholder */
	cache_near_complete(&fill, get[1], getlen[1], key, keylen, NULL, 0, -2);
	pfree((char *) get[1]);
	return value;
}

/*
 * One MGET, for the keys the near-cache does not answer, with a PTTL for
 * each key it is filling.  A key holding something else than a string
 * reads as absent.
 */
static void
redis_get_many(int nkeys, const char *const *keys, const int *keylens,
			   text **values)
{
	const char **argv = palloc((nkeys + 1) * sizeof(char *));
	size_t	   *argvlen = palloc((nkeys + 1) * sizeof(size_t));
	int		   *idx = palloc(nkeys * sizeof(int));
	NearFill   *fills = palloc(nkeys * sizeof(NearFill));
	char	  **rkeys = palloc(nkeys * sizeof(char *));
	size_t	   *rkeylens = palloc(nkeys * sizeof(size_t));
	RedisCmd   *cmds = palloc((nkeys + 1) * sizeof(RedisCmd));
	redisReply **replies = palloc((nkeys + 1) * sizeof(redisReply *));
	const char **pttl = palloc(nkeys * 2 * sizeof(char *));
	size_t	   *pttllen = palloc(nkeys * 2 * sizeof(size_t));
	int			nget = 0;
	int			ncmds = 1;
	int			nbad = 0;

	memset(values, 0, nkeys * sizeof(text *));
	argv[0] = "MGET";
	argvlen[0] = 4;
	for (int i = 0; i < nkeys; i++)
	{
		rkeys[i] = redis_key(keys[i], keylens[i], &rkeylens[i]);
		values[i] = cache_near_get(rkeys[i], rkeylens[i], &fills[i]);
		if (values[i] != NULL)
			continue;
		idx[nget++] = i;
		argv[nget] = rkeys[i];
		argvlen[nget] = rkeylens[i];
		if (fills[i].active)
		{
			pttl[2 * i] = "PTTL";
			pttllen[2 * i] = 4;
			pttl[2 * i + 1] = rkeys[i];
			pttllen[2 * i + 1] = rkeylens[i];
			cmds[ncmds++] = (RedisCmd) {2, &pttl[2 * i], &pttllen[2 * i]};
		}
	}
	cmds[0] = (RedisCmd) {nget + 1, argv, argvlen};
	if (nget > 0 && redis_run(WHAT_GET, ncmds, cmds, replies))
	{
		redisReply *reply = replies[0];
		long long  *ms = palloc(nkeys * sizeof(long long));
		int			c = 1;

		/* the PTTLs first: freed before anything can raise an ERROR */
		for (int j = 0; j < nget; j++)
			ms[idx[j]] = fills[idx[j]].active ? pttl_reply(replies[c++]) : -2;
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t) nget)
			redis_unexpected_reply(WHAT_GET, reply);
		else
		{
			for (int j = 0; j < nget; j++)
			{
				int			i = idx[j];

				if (reply->element[j]->type == REDIS_REPLY_STRING &&
					(values[i] = reply_text(reply->element[j], reply)) == NULL)
					nbad++;
				cache_near_complete(&fills[i], rkeys[i], rkeylens[i],
									keys[i], keylens[i],
									values[i] ? VARDATA(values[i]) : NULL,
									values[i] ? VARSIZE(values[i]) - VARHDRSZ : 0,
									ms[i]);
			}
			freeReplyObject(reply);
		}
		pfree(ms);
	}
	for (int j = 0; j < nget; j++)
	{
		int			i = idx[j];

		/* after a failure: drop the placeholders */
		cache_near_complete(&fills[i], rkeys[i], rkeylens[i], keys[i],
							keylens[i], NULL, 0, -2);
	}
	for (int i = 0; i < nkeys; i++)
		pfree(rkeys[i]);
	pfree(argv);
	pfree(argvlen);
	pfree(idx);
	pfree(fills);
	pfree(rkeys);
	pfree(rkeylens);
	pfree(cmds);
	pfree(replies);
	pfree(pttl);
	pfree(pttllen);
	if (nbad > 0)
		bad_value(nbad);
}

/* SET key value EX ttl, or a plain SET for a value that never expires. */
static bool
redis_set(const char *key, int keylen, const char *val, Size vallen, int ttl)
{
	char		ttlbuf[16];
	const char *argv[5] = {"SET", NULL, val, "EX", ttlbuf};
	size_t		argvlen[5] = {3, 0, vallen, 2, 0};
	redisReply *reply;
	bool		stored;

	argv[1] = redis_key(key, keylen, &argvlen[1]);
	argvlen[4] = snprintf(ttlbuf, sizeof(ttlbuf), "%d", ttl);
	/* before and after: a fill that read the old value in between goes */
	cache_near_invalidate_key(argv[1], argvlen[1]);
	reply = redis_command(WHAT_SET, ttl > 0 ? 5 : 3, argv, argvlen);
	cache_near_invalidate_key(argv[1], argvlen[1]);
	pfree((char *) argv[1]);
	if (reply == NULL)
		return false;
	stored = (reply->type == REDIS_REPLY_STATUS);
	if (!stored)
		redis_unexpected_reply(WHAT_SET, reply);
	else
		freeReplyObject(reply);
	return stored;
}

/* UNLINK: the memory of a large value is reclaimed off Redis' main thread */
static bool
redis_del(const char *key, int keylen)
{
	long long	removed;
	bool		ok;

	/* before and after: a fill that read the old value in between goes */
	cache_near_void_key(key, keylen);
	ok = integer_reply(WHAT_DEL, key_command(WHAT_DEL, "UNLINK", key, keylen),
					   &removed);
	cache_near_void_key(key, keylen);
	return ok && removed > 0;
}

/* TTL answers -2 for an absent key and -1 for one that never expires. */
static int32
redis_ttl(const char *key, int keylen, bool *found)
{
	long long	ttl;

	*found = false;
	if (!integer_reply(WHAT_TTL, key_command(WHAT_TTL, "TTL", key, keylen),
					   &ttl) || ttl == -2)
		return 0;
	*found = true;
	return (int32) Min(ttl, PG_INT32_MAX);
}


/* ---- walking the keyspace ---- */

/* A MATCH pattern: the escaped key prefix, then "tail" as a pattern. */
static StringInfo
match_pattern(const char *tail, int len)
{
	StringInfo	pattern = makeStringInfo();

	redis_match_literal(pattern, cache_key_prefix, strlen(cache_key_prefix));
	appendBinaryStringInfo(pattern, tail, len);
	return pattern;
}

/* The keys one SCAN step found, copied out of its reply, as UNLINK's argv. */
typedef struct KeyBatch
{
	int			nkeys;
	const char **argv;			/* "UNLINK", key... */
	size_t	   *argvlen;
	char	   *data;
} KeyBatch;

static void
batch_free(KeyBatch *batch)
{
	if (batch->nkeys == 0)
		return;
	pfree(batch->argv);
	pfree(batch->argvlen);
	pfree(batch->data);
	batch->nkeys = 0;
}

/*
 * Takes the cursor and keys out of a SCAN reply (["cursor", [key...]]) and
 * frees it; false (reported) if it is malformed.
 */
static bool
take_scan_reply(const char *what, redisReply *reply, char *cursor,
				KeyBatch *batch)
{
	redisReply *keys;
	size_t		total = 0;
	char	   *p;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		reply->element[0]->type != REDIS_REPLY_STRING ||
		reply->element[0]->len >= 32 ||
		reply->element[1]->type != REDIS_REPLY_ARRAY)
	{
		redis_unexpected_reply(what, reply);
		return false;
	}
	/* a cursor is a decimal number that changes at every step */
	if (reply->element[0]->len == 0 ||
		strspn(reply->element[0]->str, "0123456789") != reply->element[0]->len ||
		(strcmp(cursor, "0") != 0 &&
		 strcmp(cursor, reply->element[0]->str) == 0))
	{
		char	   *got = pnstrdup(reply->element[0]->str,
								   reply->element[0]->len);

		freeReplyObject(reply);
		cache_store_failure(CACHE_BACKEND_REDIS, what,
							psprintf("Redis answered SCAN with the cursor \"%s\" after \"%s\".",
									 got, cursor));
		return false;
	}
	memcpy(cursor, reply->element[0]->str, reply->element[0]->len + 1);
	keys = reply->element[1];
	for (size_t i = 0; i < keys->elements; i++)
		total += keys->element[i]->len;

	batch->nkeys = keys->elements;
	if (batch->nkeys > 0)
	{
		/* keys and argv together stay far below MaxAllocSize */
		batch->argv = palloc((keys->elements + 1) * sizeof(char *));
		batch->argvlen = palloc((keys->elements + 1) * sizeof(size_t));
		batch->data = p = palloc(total + 1);
		batch->argv[0] = "UNLINK";
		batch->argvlen[0] = 6;
		for (size_t i = 0; i < keys->elements; i++)
		{
			memcpy(p, keys->element[i]->str, keys->element[i]->len);
			batch->argv[i + 1] = p;
			batch->argvlen[i + 1] = keys->element[i]->len;
			p += keys->element[i]->len;
		}
	}
	freeReplyObject(reply);
	return true;
}

/*
 * Walks the keys matching "pattern" with SCAN and either counts them or
 * removes them (a count may include a key twice: SCAN can return a key
 * more than once while Redis resizes its table).  Each round trip carries the UNLINK of what the previous SCAN
 * step found and the next SCAN step.  Returns how many keys were removed
 * (UNLINK's own count, so a key that vanished meanwhile is not counted), or
 * found; after a failure, those of the steps that completed.
 */
static int64
scan_keys(const char *what, StringInfo pattern, bool remove)
{
	char		cursor[32] = "0";
	const char *scan[6] = {"SCAN", cursor, "MATCH", pattern->data, "COUNT", SCAN_COUNT};
	size_t		scanlen[6] = {4, 0, 5, pattern->len, 5, strlen(SCAN_COUNT)};
	KeyBatch	batch = {0};
	int64		n = 0;
	bool		scanning = true;
	int64		steps = 0;

	while (scanning || batch.nkeys > 0)
	{
		RedisCmd	cmds[2];
		redisReply *replies[2];
		int			ncmds = 0;
		bool		ok;

		/*
		 * A real Redis finishes a walk in about (keys / COUNT) steps; a
		 * server whose cursor never comes back to 0 is broken, not large.
		 */
		if (++steps > MAX_SCAN_STEPS)
		{
			batch_free(&batch);
			cache_store_failure(CACHE_BACKEND_REDIS, what,
								psprintf("SCAN did not finish in %d steps.", MAX_SCAN_STEPS));
			break;
		}
		CHECK_FOR_INTERRUPTS();
		/* in the worker, a long walk must not hold up the tracking stream */
		cache_tracking_worker_service();

		if (batch.nkeys > 0)
			cmds[ncmds++] = (RedisCmd) {batch.nkeys + 1, batch.argv, batch.argvlen};
		if (scanning)
		{
			scanlen[1] = strlen(cursor);
			cmds[ncmds++] = (RedisCmd) {6, scan, scanlen};
		}
		ok = redis_run(what, ncmds, cmds, replies);
		batch_free(&batch);
		if (!ok)
			break;
		if (ncmds == 2 || !scanning)
		{
			/* replies[0] answers the UNLINK */
			if (replies[0]->type == REDIS_REPLY_INTEGER)
				n += replies[0]->integer;
			freeReplyObject(replies[0]);
		}
		if (scanning)
		{
			if (!take_scan_reply(what, replies[ncmds - 1], cursor, &batch))
				break;
			scanning = (strcmp(cursor, "0") != 0);
			if (!remove)
			{
				n += batch.nkeys;
				batch_free(&batch);
			}
		}
	}
	pfree(pattern->data);
	pfree(pattern);
	return n;
}


/* ---- through the key directory ---- */

/* keys per UNLINK of the directory's keys */
#define UNLINK_BATCH	1000
/* a barrier key left behind (UNLINK not executed) expires by itself */
#define BARRIER_TTL_MS	"60000"

/*
 * Removes the keys under cache_ext.key_prefix || lit (which, with a
 * pattern, are then filtered by it) that the key directory lists, or
 * returns -1 when the directory cannot serve them: the caller walks the
 * keyspace.  A Redis failure has been reported; it returns what was
 * removed before it.
 */
static int64
directory_remove(const char *lit, int litlen, const char *pat, int patlen)
{
	size_t		plen;
	char	   *p = redis_key(lit, litlen, &plen);
	uint64		epoch = cache_keydir_covers(p, plen);
	uint64		seq;
	const char *set[5] = {"SET", NULL, "", "PX", BARRIER_TTL_MS};
	size_t		setlen[5] = {3, 0, 0, 2, strlen(BARRIER_TTL_MS)};
	const char *unlink[2] = {"UNLINK", NULL};
	size_t		unlinklen[2] = {6, 0};
	RedisCmd	cmds[2] = {{5, set, setlen}, {2, unlink, unlinklen}};
	redisReply *replies[2];
	TimestampTz deadline;
	CacheKeyList list;
	int64		n = 0;

	if (epoch == 0)
	{
		elog(DEBUG1, "cache_ext: the key directory does not cover \"%.*s\" yet: SCAN",
			 (int) plen, p);
		pfree(p);
		return -1;
	}

	/*
	 * The barrier: once the worker has consumed the notification of this
	 * write, it has consumed those of every write Redis executed before.
	 * The UNLINK leaves nothing behind.
	 */
	set[1] = unlink[1] = cache_tracking_barrier_key(&setlen[1], &seq);
	unlinklen[1] = setlen[1];
	if (!redis_run_unchecked(WHAT_INVALIDATE, 2, cmds, replies))
	{
		pfree((char *) set[1]);
		pfree(p);
		return 0;
	}
	pfree((char *) set[1]);

	/*
	 * A refused barrier (say, OOM under maxmemory-policy noeviction, which
	 * refuses SET but not UNLINK) only means the directory cannot serve
	 * this time: SCAN needs no write, so it is no failure of the store.
	 */
	if (replies[0]->type != REDIS_REPLY_STATUS ||
		replies[1]->type != REDIS_REPLY_INTEGER)
	{
		elog(DEBUG1, "cache_ext: the key directory could not serve \"%.*s\": the barrier was refused (%.*s): SCAN",
			 (int) plen, p,
			 replies[0]->type == REDIS_REPLY_ERROR ? (int) Min(replies[0]->len, 200) : 0,
			 replies[0]->type == REDIS_REPLY_ERROR ? replies[0]->str : "");
		redis_free_replies(2, replies);
		pfree(p);
		return -1;
	}
	redis_free_replies(2, replies);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   cache_redis_command_timeout);
	if (cache_redis_deadline != 0 && cache_redis_deadline < deadline)
		deadline = cache_redis_deadline;
	if (!cache_tracking_barrier_wait(seq, epoch, deadline) ||
		!cache_keydir_collect(p, plen, pat, patlen, strlen(cache_key_prefix),
							  epoch, &list))
	{
		elog(DEBUG1, "cache_ext: the key directory could not serve \"%.*s\": SCAN",
			 (int) plen, p);
		pfree(p);
		return -1;
	}

	for (int start = 0; start < list.nkeys; start += UNLINK_BATCH)
	{
		int			count = Min(UNLINK_BATCH, list.nkeys - start);
		const char **argv = palloc((count + 1) * sizeof(char *));
		size_t	   *argvlen = palloc((count + 1) * sizeof(size_t));
		uint64		consumed = cache_tracking_consumed();
		redisReply *reply;

		cache_tracking_worker_service();
		argv[0] = "UNLINK";
		argvlen[0] = 6;
		memcpy(argv + 1, list.keys + start, count * sizeof(char *));
		memcpy(argvlen + 1, list.lens + start, count * sizeof(size_t));
		reply = redis_command(WHAT_INVALIDATE, count + 1, argv, argvlen);
		pfree(argv);
		pfree(argvlen);
		if (reply == NULL)
			break;
		if (reply->type == REDIS_REPLY_INTEGER)
			n += reply->integer;
		freeReplyObject(reply);
		/* they are gone: forget them, unless written again since */
		cache_keydir_forget(count, list.keys + start, list.lens + start,
							consumed);
	}
	elog(DEBUG1, "cache_ext: removed " INT64_FORMAT " of %d keys under \"%.*s\" listed by the key directory",
		 n, list.nkeys, (int) plen, p);
	if (list.nkeys > 0)
	{
		pfree(list.keys);
		pfree(list.lens);
		pfree(list.data);
	}
	pfree(p);
	return n;
}

/* The literal start of a glob pattern: its length. */
static int
literal_start(const char *pattern, int len)
{
	int			i = 0;

	while (i < len && strchr("*?[\\", pattern[i]) == NULL)
		i++;
	return i;
}

/* Every key starting with "prefix", taken literally. */
static int64
redis_invalidate_prefix(const char *prefix, int len)
{
	StringInfo	pattern;
	int64		n;

	/*
	 * Before and after, as redis_del(): during the barrier's wait and the
	 * UNLINKs another session may fill the near-cache with a value they are
	 * removing, and the worker may not have consumed their notifications
	 * yet when we return.
	 */
	cache_near_void_prefix(prefix, len);
	if (len <= 0 || (n = directory_remove(prefix, len, NULL, 0)) < 0)
	{
		pattern = match_pattern("", 0);
		redis_match_literal(pattern, prefix, len);
		appendStringInfoChar(pattern, '*');
		n = scan_keys(WHAT_INVALIDATE, pattern, true);
	}
	cache_near_void_prefix(prefix, len);
	return n;
}

static int64
redis_invalidate_pattern(const char *pattern, int len)
{
	int			litlen = literal_start(pattern, len);
	int64		n;

	/* before and after: see redis_invalidate_prefix() */
	cache_near_void_pattern(pattern, len);
	if (litlen <= 0 ||
		(n = directory_remove(pattern, litlen, pattern, len)) < 0)
		n = scan_keys(WHAT_INVALIDATE, match_pattern(pattern, len), true);
	cache_near_void_pattern(pattern, len);
	return n;
}

/*
 * Every key under cache_ext.key_prefix; with an empty prefix, every key of
 * the Redis database, as FLUSHDB would, but without blocking Redis.
 */
static int64
redis_flush(void)
{
	int64		n;

	/* before and after: see redis_invalidate_prefix() */
	cache_near_void_namespace();
	n = scan_keys(WHAT_FLUSH, match_pattern("*", 1), true);
	cache_near_void_namespace();
	return n;
}


/* ---- size ---- */

/* A numeric field of INFO's "name:value\r\n" lines; 0 if absent. */
static int64
info_field(const redisReply *info, const char *name)
{
	size_t		namelen = strlen(name);
	const char *line = info->str;
	const char *end = info->str + info->len;

	while (line < end)
	{
		const char *eol = memchr(line, '\n', end - line);

		if (eol == NULL)
			eol = end;
		if ((size_t) (eol - line) > namelen && line[namelen] == ':' &&
			strncmp(line, name, namelen) == 0)
			return strtoll(line + namelen + 1, NULL, 10);
		line = eol + 1;
	}
	return 0;
}

/*
 * entries: with no key prefix, DBSIZE (every key of the database, which is
 * then the cache's namespace); with a prefix, the keys under it, counted
 * with SCAN, which costs a walk of the whole keyspace.
 * bytes_used and bytes_max: used_memory and maxmemory of INFO memory, for
 * the whole Redis server, which does not account memory per key prefix;
 * bytes_max is 0 when Redis has no maxmemory limit.
 */
static void
redis_size(CacheStoreSize *out)
{
	const char *info[2] = {"INFO", "memory"};
	size_t		infolen[2] = {4, 6};
	const char *dbsize[1] = {"DBSIZE"};
	size_t		dbsizelen[1] = {6};
	RedisCmd	cmds[2] = {{2, info, infolen}, {1, dbsize, dbsizelen}};
	redisReply *replies[2];
	bool		prefixed = (cache_key_prefix[0] != '\0');

	memset(out, 0, sizeof(*out));
	if (!redis_run(WHAT_SIZE, prefixed ? 1 : 2, cmds, replies))
		return;
	if (replies[0]->type != REDIS_REPLY_STRING ||
		(!prefixed && replies[1]->type != REDIS_REPLY_INTEGER))
	{
		redis_free_replies(prefixed ? 1 : 2, replies);
		cache_store_failure(CACHE_BACKEND_REDIS, WHAT_SIZE,
							"Redis answered INFO or DBSIZE with an unexpected reply.");
		return;
	}
	out->bytes_used = info_field(replies[0], "used_memory");
	out->bytes_max = info_field(replies[0], "maxmemory");
	if (!prefixed)
		out->entries = replies[1]->integer;
	redis_free_replies(prefixed ? 1 : 2, replies);
	if (prefixed)
		out->entries = scan_keys(WHAT_SIZE, match_pattern("*", 1), false);
}

const CacheStore cache_redis_store = {
	.id = CACHE_BACKEND_REDIS,
	.name = "redis",
	.get = redis_get,
	.get_many = redis_get_many,
	.set = redis_set,
	.del = redis_del,
	.invalidate_prefix = redis_invalidate_prefix,
	.invalidate_pattern = redis_invalidate_pattern,
	.ttl = redis_ttl,
	.flush = redis_flush,
	.size = redis_size,
};
