/*-------------------------------------------------------------------------
 *
 * redis_conn.h
 *		Round trips on this process's Redis connection (redis_conn.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef REDIS_CONN_H
#define REDIS_CONN_H

#include <hiredis/hiredis.h>

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "storage/latch.h"

/* One command of a pipeline; every argument is binary-safe. */
typedef struct RedisCmd
{
	int			argc;
	const char **argv;
	const size_t *argvlen;
} RedisCmd;

/*
 * Sends "ncmds" commands in one write and reads their replies: one round
 * trip, bounded by cache_ext.redis_command_timeout (and cache_redis_deadline).
 * True if every reply arrived and none is a Redis error; replies[] then
 * hold them, to be released with redis_free_replies().  Otherwise the
 * failure has been reported through cache_store_failure(), which may raise
 * an ERROR, and the result is false.
 */
extern bool redis_run(const char *what, int ncmds, const RedisCmd *cmds,
					  redisReply **replies);

/*
 * redis_run() that does not check the replies: true once all arrived, Redis
 * error replies included, which the caller must look at (and free).
 * Connection failures are reported as by redis_run().
 */
extern bool redis_run_unchecked(const char *what, int ncmds,
								const RedisCmd *cmds, redisReply **replies);

/* redis_run() for a single command: its reply, or NULL after a failure */
extern redisReply *redis_command(const char *what, int argc, const char **argv,
								 const size_t *argvlen);

extern void redis_free_replies(int n, redisReply **replies);

/* reports a reply that is not what the command answers, after freeing it */
extern void redis_unexpected_reply(const char *what, redisReply *reply);

/*
 * A connection set aside (redis_conn_switch()): the worker's tracking
 * session.  conn is NULL while none is open.
 */
typedef struct RedisConnSlot
{
	redisContext *conn;
	WaitEventSet *events;
	int			socket_pos;
	uint32		socket_event;
	char	   *url;
	TimestampTz retry_after;
} RedisConnSlot;

extern void redis_conn_switch(RedisConnSlot *other);
extern void redis_conn_close(void);
extern const char *redis_conn_error(void);

/* s appended to a SCAN MATCH pattern, taken literally */
extern void redis_match_literal(StringInfo pattern, const char *s, int len);

#endif							/* REDIS_CONN_H */
