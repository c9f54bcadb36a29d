/*-------------------------------------------------------------------------
 *
 * store_redis.c
 *		The Redis store: values are plain Redis strings under
 *		cache_ext.key_prefix || key, with native TTLs, so that any other
 *		Redis client (an application's own cache) shares them.
 *
 * The first half is the session's connection, the second the store.
 *
 * cache_ext.redis_url is parsed when it is set, so that a bad URL is an
 * ERROR of the SET rather than a surprise later; the parsed form is the
 * setting's "extra".  The password lives only there: the value the server
 * keeps, shows and logs has it replaced by ***, and no message quotes it.
 *
 * The connection is opened on first use and kept.  hiredis (0.14 in Debian
 * 12) is used only to format commands and parse replies: its blocking calls
 * cannot be interrupted (a read retries through signals) and its connect
 * timeout does not bound commands, and its connect path aborts the process
 * when an allocation fails.  So we open the socket ourselves, hand it to
 * redisConnectFd() in non-blocking mode, and do every wait with
 * PostgreSQL's latch machinery, so that a cancel or statement_timeout
 * interrupts it and postmaster death ends it.  redisReconnect() is not used:
 * it does not redo AUTH and SELECT.
 *
 * A call interrupted halfway leaves the connection in an unknown state (a
 * late reply would answer the next command), so any ERROR escaping a call
 * closes it, as does a timeout or an I/O error.  After such a failure we do
 * not try to connect again for RETRY_INTERVAL_MS: while Redis is down, calls
 * fail fast instead of each waiting for the connect timeout, and once it is
 * back the next call after the interval reconnects by itself.
 *
 * Every argument goes to Redis as a binary-safe bulk string
 * (redisAppendCommandArgv); no key or value is ever formatted into a
 * command.  One call
 * is one round trip, except the bulk removals, which walk the keyspace with
 * SCAN ... MATCH ... COUNT and remove what each step found with UNLINK,
 * pipelined with the next SCAN: no single command blocks Redis for long,
 * whatever the size of the keyspace.
 *
 * Failures are reported where they are found (cache_store_failure, which
 * follows cache_ext.on_error); the store functions then only answer a miss,
 * "not stored" or "nothing removed".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cache_ext.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* One command of a pipeline; every argument is binary-safe. */
typedef struct RedisCmd
{
	int			argc;
	const char **argv;
	const size_t *argvlen;
} RedisCmd;

static void
redis_free_replies(int n, redisReply **replies)
{
	for (int i = 0; i < n; i++)
	{
		if (replies[i] != NULL)
			freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
}

/* after a failure, the next connection attempt waits this long */
#define RETRY_INTERVAL_MS	1000

/* addresses of a host name tried in turn */
#define MAX_ADDRESSES		8

#define DEFAULT_PORT		6379

/*
 * cache_ext.redis_url, parsed.  One malloc'd block, as GUC "extra" must be:
 * the strings point into data[].
 */
typedef struct RedisUrl
{
	bool		is_unix;
	int			port;
	int			db;
	char	   *raw;			/* the setting as given */
	char	   *host;			/* host name or address, or socket path */
	char	   *user;			/* AUTH user name, or NULL */
	char	   *password;		/* AUTH password, or NULL for no AUTH */
	char	   *masked;			/* the setting with the password as *** */
	char	   *target;			/* host:port or socket path, for messages */
	char		data[FLEXIBLE_ARRAY_MEMBER];
} RedisUrl;

static const RedisUrl *redis_url = NULL;	/* current setting */

static redisContext *conn = NULL;
static WaitEventSet *conn_events = NULL;	/* latch, postmaster, socket */
static int	conn_socket_pos;
static uint32 conn_socket_event;
static char *conn_url = NULL;	/* redis_url->raw when conn was opened */
static pgsocket pending_sock = PGINVALID_SOCKET;	/* being connected */
static TimestampTz retry_after = 0;
static char conn_error[256];	/* why the last attempt failed */
static bool exit_hook_set = false;

/*
 * When set, no Redis call of this process goes past it: the commit-time
 * repeat bounds its whole work with it (coherence.c).
 */
TimestampTz cache_redis_deadline = 0;
static bool conn_lost;		/* the last exchange failed on I/O, not a timeout */


/* ---- cache_ext.redis_url ---- */

/* Appends n bytes and a NUL at *cursor; returns where they start. */
static char *
put(char **cursor, const char *s, size_t n)
{
	char	   *start = *cursor;

	memcpy(start, s, n);
	start[n] = '\0';
	*cursor += n + 1;
	return start;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes [s, end) at *cursor; NULL if malformed or it has a NUL. */
static char *
put_decoded(char **cursor, const char *s, const char *end)
{
	char	   *start = *cursor;
	char	   *out = start;

	for (; s < end; s++)
	{
		if (*s == '%')
		{
			int			hi = (end - s > 2) ? hex_value(s[1]) : -1;
			int			lo = (end - s > 2) ? hex_value(s[2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return NULL;
			*out++ = (char) (hi * 16 + lo);
			s += 2;
		}
		else
			*out++ = *s;
	}
	*out = '\0';
	*cursor = out + 1;
	return start;
}

/* Parses a decimal number in [s, end) within [min, max]. */
static bool
parse_number(const char *s, const char *end, int min, int max, int *result)
{
	int64		v = 0;

	if (s == end || end - s > 10)
		return false;
	for (; s < end; s++)
	{
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
	}
	if (v < min || v > max)
		return false;
	*result = (int) v;
	return true;
}

/* host[:port] or [v6address][:port] */
static const char *
parse_host_port(const char *s, const char *end, RedisUrl *u, char **cursor)
{
	const char *host_end;
	const char *port = NULL;

	if (*s == '[')
	{
		host_end = memchr(s, ']', end - s);
		if (host_end == NULL)
			return "an IPv6 address must end with \"]\"";
		s++;
		if (host_end + 1 < end)
		{
			if (host_end[1] != ':')
				return "unexpected characters after \"]\"";
			port = host_end + 2;
		}
	}
	else
	{
		host_end = memchr(s, ':', end - s);
		if (host_end != NULL)
			port = host_end + 1;
		else
			host_end = end;
	}
	if (host_end == s)
		return "the host is missing";
	u->host = put(cursor, s, host_end - s);
	u->port = DEFAULT_PORT;
	if (port && !parse_number(port, end, 1, 65535, &u->port))
		return "the port must be a number from 1 to 65535";
	return NULL;
}

/* unix:///path/to/socket[?db=N]: s points at the path */
static const char *
parse_unix_path(const char *s, RedisUrl *u, char **cursor)
{
	const char *query = strchr(s, '?');
	const char *end = query ? query : s + strlen(s);

	if (*s != '/')
		return "a unix socket URL needs an absolute path, as in unix:///path/to/redis.sock";
	if (end - s >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
		return "the socket path is too long";
	u->host = put(cursor, s, end - s);
	if (query == NULL)
		return NULL;
	if (strncmp(query, "?db=", 4) != 0 ||
		!parse_number(query + 4, query + strlen(query), 0, INT_MAX, &u->db))
		return "the only parameter of a unix socket URL is db=N, N a database number";
	return NULL;
}

/* /N after the host, or nothing */
static const char *
parse_db(const char *s, RedisUrl *u)
{
	if (*s == '\0' || strcmp(s, "/") == 0)
		return NULL;
	if (!parse_number(s + 1, s + strlen(s), 0, INT_MAX, &u->db))
		return "the database must be a number after \"/\", as in redis://host:6379/0";
	return NULL;
}

/* [user]:password@, from "s" to the "@" at "at" */
static const char *
parse_userinfo(const char *s, const char *at, RedisUrl *u, char **cursor)
{
	const char *colon = memchr(s, ':', at - s);

	if (colon == NULL)
		return "a password must follow a colon, as in redis://:password@host";
	if (colon > s && (u->user = put_decoded(cursor, s, colon)) == NULL)
		return "bad %-escape in the user name";
	if (at > colon + 1 && (u->password = put_decoded(cursor, colon + 1, at)) == NULL)
		return "bad %-escape in the password";
	return NULL;
}

/*
 * Parses "url" into u, writing its strings at *cursor, which has room for 4
 * copies of it plus 32 bytes.  Returns NULL, or what is wrong, never quoting
 * the password.
 */
static const char *
parse_url(const char *url, RedisUrl *u, char **cursorp)
{
	const char *rest;
	const char *authority_end;
	const char *at = NULL;
	const char *err;

	u->raw = put(cursorp, url, strlen(url));
	if (strncmp(url, "redis://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "unix://", 7) == 0)
	{
		u->is_unix = true;
		rest = url + 7;
	}
	else
		return "it must start with redis:// or unix://";

	authority_end = rest + strcspn(rest, "/");
	for (const char *p = rest; p < authority_end; p++)
		if (*p == '@')
			at = p;
	if (at && (err = parse_userinfo(rest, at, u, cursorp)) != NULL)
		return err;

	/* masked: the URL with the password replaced */
	if (u->password)
	{
		const char *pw = (const char *) memchr(rest, ':', at - rest) + 1;

		u->masked = *cursorp;
		*cursorp += sprintf(*cursorp, "%.*s***%s", (int) (pw - url), url, at) + 1;
	}
	else
		u->masked = u->raw;

	rest = at ? at + 1 : rest;
	if (u->is_unix)
	{
		if (rest != authority_end)
			return "a unix socket URL has no host: use unix:///path/to/redis.sock";
		err = parse_unix_path(rest, u, cursorp);
		u->target = u->host;
		return err;
	}
	if ((err = parse_host_port(rest, authority_end, u, cursorp)) != NULL)
		return err;
	if ((err = parse_db(authority_end, u)) != NULL)
		return err;
	u->target = *cursorp;
	*cursorp += 1 + sprintf(*cursorp, strchr(u->host, ':') ? "[%s]:%d" : "%s:%d",
			u->host, u->port);
	return NULL;
}

/*
 * A URL whose password is "***" and that otherwise matches the current one
 * means the password in effect: this is how the value reads back (SHOW,
 * FROM CURRENT), and setting it back must not lose the password.  Copies
 * that password to *cursor.
 */
static void
keep_current_password(RedisUrl *u, char **cursor)
{
	if (u->password == NULL || strcmp(u->password, "***") != 0 ||
		redis_url == NULL || redis_url->password == NULL ||
		strcmp(redis_url->masked, u->masked) != 0)
		return;
	u->password = put(cursor, redis_url->password, strlen(redis_url->password));
}

static bool
reject_url(const char *why)
{
	/* our own message: the default one would quote the password */
	GUC_check_errmsg("invalid value for parameter \"%s\"", "cache_ext.redis_url");
	GUC_check_errdetail("%s", why);
	GUC_check_errhint("Use redis://[[user]:password@]host[:port][/db] or unix:///path/to/socket[?db=N]; escape \"@\", \"/\" and \"%%\" in a password as %%40, %%2F and %%25.");
	return false;
}

/*
 * Parses the URL into its "extra", and replaces the value itself by its
 * masked form: SHOW, pg_settings (including its reset_val column, which no
 * show hook covers), current_setting() and the server log then never hold
 * the password, which lives only in the extra.
 */
bool
cache_redis_check_url(char **newval, void **extra, GucSource source)
{
	size_t		len = strlen(*newval);
	size_t		keep = (redis_url && redis_url->password) ?
		strlen(redis_url->password) + 1 : 0;
	RedisUrl   *u = malloc(offsetof(RedisUrl, data) + 4 * (len + 1) + 32 + keep);
	char	   *cursor;
	const char *err;
	char	   *masked;

	if (u == NULL)
		return reject_url("out of memory");
	memset(u, 0, offsetof(RedisUrl, data));
	cursor = u->data;
	if (len == 0)
	{
		/* no Redis: the store reports that it is not configured */
		u->raw = u->masked = put(&cursor, "", 0);
		*extra = u;
		return true;
	}
	err = parse_url(*newval, u, &cursor);
	if (err != NULL)
	{
		free(u);
		return reject_url(err);
	}
	keep_current_password(u, &cursor);

	if (u->masked != u->raw)
	{
		masked = strdup(u->masked);
		if (masked == NULL)
		{
			free(u);
			return reject_url("out of memory");
		}
		free(*newval);
		*newval = masked;
	}
	*extra = u;
	return true;
}

/*
 * The connection is compared with the new URL on next use rather than closed
 * here: an assign hook may run in the middle of error recovery.
 */
void
cache_redis_assign_url(const char *newval, void *extra)
{
	redis_url = (const RedisUrl *) extra;
}

bool
cache_redis_configured(void)
{
	return redis_url != NULL && redis_url->raw[0] != '\0';
}

/*
 * The setting with its password, for the background worker that delivers
 * queued invalidations to the server they were meant for.  Only ever kept
 * in shared memory, never shown.
 */
const char *
cache_redis_url_raw(void)
{
	return redis_url ? redis_url->raw : "";
}

/* The value is already masked (see above); so is the boot value. */
const char *
cache_redis_show_url(void)
{
	return redis_url ? redis_url->masked : cache_redis_url;
}


/* ---- waiting ---- */

static void
set_error(const char *fmt,...) pg_attribute_printf(1, 2);

static void
set_error(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	vsnprintf(conn_error, sizeof(conn_error), fmt, args);
	va_end(args);
}

static TimestampTz
deadline_after(int ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

/* one round trip's: the command timeout, or the caller's deadline if sooner */
static TimestampTz
command_deadline(void)
{
	TimestampTz deadline = deadline_after(cache_redis_command_timeout);

	if (cache_redis_deadline != 0 && cache_redis_deadline < deadline)
		return cache_redis_deadline;
	return deadline;
}

/*
 * Waits until "sock" is ready for "event" (WL_SOCKET_*), serving interrupts
 * meanwhile; false at the deadline.  An open connection waits through its
 * own WaitEventSet, which saves creating an epoll set on every call.
 */
static bool
wait_socket(pgsocket sock, uint32 event, TimestampTz deadline)
{
	for (;;)
	{
		long		secs;
		int			usecs;
		long		ms;
		int			rc;

		TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
		ms = secs * 1000 + (usecs + 999) / 1000;
		if (ms <= 0)
			return false;

		if (conn_events != NULL)
		{
			WaitEvent	ev;

			if (conn_socket_event != event)
			{
				ModifyWaitEvent(conn_events, conn_socket_pos, event, NULL);
				conn_socket_event = event;
			}
			rc = (WaitEventSetWait(conn_events, ms, &ev, 1,
								   PG_WAIT_EXTENSION) == 1) ? ev.events : 0;
		}
		else
			rc = WaitLatchOrSocket(MyLatch,
								   event | WL_LATCH_SET | WL_TIMEOUT |
								   WL_EXIT_ON_PM_DEATH,
								   sock, ms, PG_WAIT_EXTENSION);

		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();

			/*
			 * After commit interrupts are held, so CHECK_FOR_INTERRUPTS()
			 * does nothing: give up the wait instead, and the caller hands
			 * what it could not deliver to the invalidation queue.
			 */
			if (QueryCancelPending || ProcDiePending)
			{
				set_error("canceled");
				return false;
			}
		}
		if (rc & event)
			return true;
	}
}


/* ---- connecting ---- */

static void
conn_close(void)
{
	if (conn_events != NULL)
		FreeWaitEventSet(conn_events);
	conn_events = NULL;
	if (conn != NULL)
		redisFree(conn);		/* closes the socket */
	conn = NULL;
	if (pending_sock != PGINVALID_SOCKET)
		closesocket(pending_sock);
	pending_sock = PGINVALID_SOCKET;
}

static void
conn_at_exit(int code, Datum arg)
{
	conn_close();
}

/* The socket connected to addr, or PGINVALID_SOCKET with conn_error set. */
static pgsocket
connect_addr(const struct sockaddr *addr, socklen_t addrlen,
			 TimestampTz deadline)
{
	pgsocket	sock;
	int			err = 0;
	socklen_t	errlen = sizeof(err);

	/* kept in pending_sock so that an ERROR while waiting closes it */
	pending_sock = socket(addr->sa_family,
						  SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pending_sock == PGINVALID_SOCKET)
		err = errno;
	else if (addr->sa_family != AF_UNIX)
	{
		int			on = 1;

		/* a command is one small write: do not wait to coalesce it */
		(void) setsockopt(pending_sock, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		(void) setsockopt(pending_sock, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	}
	if (err == 0 && connect(pending_sock, addr, addrlen) < 0)
	{
		if (errno != EINPROGRESS && errno != EINTR)
			err = errno;
		else if (!wait_socket(pending_sock, WL_SOCKET_CONNECTED, deadline))
			err = ETIMEDOUT;
		else if (getsockopt(pending_sock, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
			err = errno;
	}
	if (err != 0)
	{
		set_error("could not connect to Redis at %s: %s",
				  redis_url->target, strerror(err));
		conn_close();
		return PGINVALID_SOCKET;
	}
	sock = pending_sock;
	pending_sock = PGINVALID_SOCKET;
	return sock;
}

/*
 * Tries each address of the host in turn.  The name lookup itself is not
 * bounded by the connect timeout: use an address, or a reliable resolver.
 */
static pgsocket
connect_tcp(TimestampTz deadline)
{
	struct addrinfo hints;
	struct addrinfo *res;
	struct sockaddr_storage addrs[MAX_ADDRESSES];
	socklen_t	addrlens[MAX_ADDRESSES];
	int			naddrs = 0;
	char		port[16];
	int			rc;
	pgsocket	sock = PGINVALID_SOCKET;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", redis_url->port);
	rc = getaddrinfo(redis_url->host, port, &hints, &res);
	if (rc != 0)
	{
		set_error("could not resolve Redis host \"%s\": %s",
				  redis_url->host, gai_strerror(rc));
		return PGINVALID_SOCKET;
	}
	/* copied out so that an ERROR while connecting leaks nothing */
	for (struct addrinfo *ai = res; ai && naddrs < MAX_ADDRESSES; ai = ai->ai_next)
	{
		memcpy(&addrs[naddrs], ai->ai_addr, ai->ai_addrlen);
		addrlens[naddrs++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);

	for (int i = 0; i < naddrs && sock == PGINVALID_SOCKET; i++)
		sock = connect_addr((struct sockaddr *) &addrs[i], addrlens[i],
							deadline);
	return sock;
}

static pgsocket
connect_unix(TimestampTz deadline)
{
	struct sockaddr_un addr;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strlcpy(addr.sun_path, redis_url->host, sizeof(addr.sun_path));
	return connect_addr((struct sockaddr *) &addr, sizeof(addr), deadline);
}

static bool exchange(int ncmds, const RedisCmd *cmds, redisReply **replies,
					 TimestampTz deadline);

/* AUTH and SELECT, as the URL asks; false with conn_error set. */
static bool
handshake(TimestampTz deadline)
{
	const char *auth[3] = {"AUTH"};
	size_t		authlen[3] = {4};
	char		db[16];
	const char *select[2] = {"SELECT", db};
	size_t		selectlen[2] = {6};
	RedisCmd	cmds[2];
	redisReply *replies[2] = {NULL, NULL};
	int			n = 0;
	bool		ok;

	if (redis_url->password)
	{
		int			argc = 1;

		if (redis_url->user)
		{
			auth[argc] = redis_url->user;
			authlen[argc++] = strlen(redis_url->user);
		}
		auth[argc] = redis_url->password;
		authlen[argc++] = strlen(redis_url->password);
		cmds[n++] = (RedisCmd) {argc, auth, authlen};
	}
	if (redis_url->db != 0)
	{
		selectlen[1] = snprintf(db, sizeof(db), "%d", redis_url->db);
		cmds[n++] = (RedisCmd) {2, select, selectlen};
	}
	if (n == 0)
		return true;

	ok = exchange(n, cmds, replies, deadline);
	for (int i = 0; ok && i < n; i++)
	{
		if (replies[i]->type != REDIS_REPLY_ERROR)
			continue;
		if (cmds[i].argv == auth)
			set_error("authentication to Redis at %s failed: %s",
					  redis_url->target, replies[i]->str);
		else
			set_error("could not select database %d on Redis at %s: %s",
					  redis_url->db, redis_url->target, replies[i]->str);
		ok = false;
	}
	redis_free_replies(n, replies);
	return ok;
}

static bool
conn_open(void)
{
	TimestampTz deadline = deadline_after(cache_redis_connect_timeout);
	pgsocket	sock;

	if (!exit_hook_set)
	{
		on_proc_exit(conn_at_exit, (Datum) 0);
		exit_hook_set = true;
	}
	if (conn_url == NULL || strcmp(conn_url, redis_url->raw) != 0)
	{
		if (conn_url)
			pfree(conn_url);
		conn_url = MemoryContextStrdup(TopMemoryContext, redis_url->raw);
	}

	sock = redis_url->is_unix ? connect_unix(deadline) : connect_tcp(deadline);
	if (sock == PGINVALID_SOCKET)
		return false;
	conn = redisConnectFd(sock);
	if (conn == NULL)
	{
		closesocket(sock);
		set_error("out of memory");
		return false;
	}
	/* redisConnectFd assumes a blocking socket: EAGAIN must not be an error */
	conn->flags &= ~REDIS_BLOCK;

	conn_events = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(conn_events, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	if (IsUnderPostmaster)
		AddWaitEventToSet(conn_events, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET,
						  NULL, NULL);
	conn_socket_event = WL_SOCKET_READABLE;
	conn_socket_pos = AddWaitEventToSet(conn_events, conn_socket_event, sock,
										NULL, NULL);
	return handshake(deadline);
}

/* ---- round trips ---- */

static bool
io_failed(const char *doing)
{
	conn_lost = true;
	set_error("could not %s Redis at %s: %s", doing, redis_url->target,
			  conn->err ? conn->errstr : "unknown error");
	return false;
}

/*
 * Writes the commands and reads one reply for each; false with conn_error
 * set.  Replies read before a failure stay in replies[] for the caller to
 * free.
 */
static bool
exchange(int ncmds, const RedisCmd *cmds, redisReply **replies,
		 TimestampTz deadline)
{
	int			done = 0;

	conn_lost = false;
	for (int i = 0; i < ncmds; i++)
		if (redisAppendCommandArgv(conn, cmds[i].argc, cmds[i].argv,
								   cmds[i].argvlen) != REDIS_OK)
			return io_failed("send a command to");

	while (!done)
	{
		if (redisBufferWrite(conn, &done) != REDIS_OK)
			return io_failed("write to");
		if (!done && !wait_socket(conn->fd, WL_SOCKET_WRITEABLE, deadline))
		{
			set_error("timeout writing to Redis at %s", redis_url->target);
			return false;
		}
	}

	for (int i = 0; i < ncmds; i++)
	{
		void	   *reply = NULL;

		for (;;)
		{
			if (redisGetReplyFromReader(conn, &reply) != REDIS_OK)
				return io_failed("read a reply from");
			if (reply != NULL)
				break;
			if (!wait_socket(conn->fd, WL_SOCKET_READABLE, deadline))
			{
				set_error("timeout waiting for a reply from Redis at %s",
						  redis_url->target);
				return false;
			}
			if (redisBufferRead(conn) != REDIS_OK)
				return io_failed("read from");
		}
		replies[i] = reply;
	}
	return true;
}

/* Reports the first error reply, if any, and frees them all. */
static bool
no_error_reply(const char *what, int n, redisReply **replies)
{
	for (int i = 0; i < n; i++)
	{
		if (replies[i]->type == REDIS_REPLY_ERROR)
		{
			char	   *msg = pnstrdup(replies[i]->str, replies[i]->len);

			redis_free_replies(n, replies);
			cache_store_failure(CACHE_BACKEND_REDIS, what, msg);
			return false;
		}
	}
	return true;
}

/*
 * One round trip on the open connection, opening one if there is none;
 * false with conn_error set.  Within RETRY_INTERVAL_MS of a failure, fails
 * at once with the error of that failure.
 */
static bool
attempt(int ncmds, const RedisCmd *cmds, redisReply **replies)
{
	bool		reused = (conn != NULL);

	if (!cache_redis_configured())
	{
		set_error("cache_ext.redis_url is not set");
		return false;
	}
	if (conn_url != NULL && strcmp(conn_url, redis_url->raw) != 0)
	{
		/* cache_ext.redis_url changed: the new server deserves a try now */
		conn_close();
		reused = false;
		retry_after = 0;
	}
	if (!reused && retry_after != 0 && GetCurrentTimestamp() < retry_after)
		return false;
	if (cache_redis_deadline != 0 && GetCurrentTimestamp() >= cache_redis_deadline)
	{
		set_error("out of time");
		return false;
	}
	if ((reused || conn_open()) &&
		exchange(ncmds, cmds, replies, command_deadline()))
		return true;

	/*
	 * Redis closes a connection left idle longer than its "timeout" setting,
	 * and a restarted Redis has closed them all: that shows only when the
	 * connection is used again.  Our commands are idempotent, so one more
	 * try on a new connection is safe.
	 */
	if (reused && conn_lost && replies[0] == NULL)
	{
		conn_close();
		if (conn_open() &&
			exchange(ncmds, cmds, replies, command_deadline()))
			return true;
	}

	/*
	 * Closes the connection (a reply may still be on its way) and starts the
	 * back-off, unless we gave up ourselves (a cancel, or the caller's
	 * deadline), which says nothing about Redis.
	 */
	conn_close();
	if (!QueryCancelPending && !ProcDiePending &&
		!(cache_redis_deadline != 0 &&
		  GetCurrentTimestamp() >= cache_redis_deadline))
		retry_after = deadline_after(RETRY_INTERVAL_MS);
	return false;
}

/*
 * Sends "ncmds" commands in one write and reads their replies: one round
 * trip, bounded by cache_ext.redis_command_timeout (plus the connect timeout
 * when it has to connect first).
 *
 * True if every reply arrived and none is a Redis error; replies[] then hold
 * them, to be released with redis_free_replies().  Otherwise the failure has
 * been reported through cache_store_failure(CACHE_BACKEND_REDIS, what, ...), which may
 * raise an ERROR, no reply is left to free, and the result is false.
 */
static bool
redis_run(const char *what, int ncmds, const RedisCmd *cmds,
		  redisReply **replies)
{
	bool		ok;

	memset(replies, 0, ncmds * sizeof(redisReply *));
	PG_TRY();
	{
		ok = attempt(ncmds, cmds, replies);
	}
	PG_CATCH();
	{
		/* interrupted halfway: the connection's state is unknown */
		redis_free_replies(ncmds, replies);
		conn_close();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!ok)
	{
		redis_free_replies(ncmds, replies);
		cache_store_failure(CACHE_BACKEND_REDIS, what, conn_error);
		return false;
	}
	return no_error_reply(what, ncmds, replies);
}

/* redis_run() for a single command: its reply, or NULL after a failure. */
static redisReply *
redis_command(const char *what, int argc, const char **argv,
			  const size_t *argvlen)
{
	RedisCmd	cmd = {argc, argv, argvlen};
	redisReply *reply;

	return redis_run(what, 1, &cmd, &reply) ? reply : NULL;
}

/*
 * Reports a reply that is not what the command answers on success (say, an
 * application stored a hash under a cache key), after freeing it.
 */
static void
redis_unexpected_reply(const char *what, redisReply *reply)
{
	int			type = reply->type;

	freeReplyObject(reply);
	cache_store_failure(CACHE_BACKEND_REDIS, what,
						psprintf("unexpected reply of type %d from Redis", type));
}


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
 * A palloc'd copy of a string reply.  On out-of-memory the reply (the whole
 * reply it belongs to: "owner") is freed before the ERROR, so nothing leaks.
 */
static text *
reply_text(const redisReply *reply, redisReply *owner)
{
	text	   *t = palloc_extended(VARHDRSZ + reply->len, MCXT_ALLOC_NO_OOM);

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

static text *
redis_get(const char *key, int keylen)
{
	redisReply *reply = key_command(WHAT_GET, "GET", key, keylen);
	text	   *value = NULL;

	if (reply == NULL)
		return NULL;
	if (reply->type == REDIS_REPLY_STRING)
		value = reply_text(reply, reply);
	else if (reply->type != REDIS_REPLY_NIL)
	{
		redis_unexpected_reply(WHAT_GET, reply);
		return NULL;
	}
	freeReplyObject(reply);
	return value;
}

/* One MGET.  A key holding something else than a string reads as absent. */
static void
redis_get_many(int nkeys, const char *const *keys, const int *keylens,
			   text **values)
{
	const char **argv = palloc((nkeys + 1) * sizeof(char *));
	size_t	   *argvlen = palloc((nkeys + 1) * sizeof(size_t));
	redisReply *reply;

	memset(values, 0, nkeys * sizeof(text *));
	argv[0] = "MGET";
	argvlen[0] = 4;
	for (int i = 0; i < nkeys; i++)
		argv[i + 1] = redis_key(keys[i], keylens[i], &argvlen[i + 1]);
	reply = redis_command(WHAT_GET, nkeys + 1, argv, argvlen);
	for (int i = 0; i < nkeys; i++)
		pfree((char *) argv[i + 1]);
	pfree(argv);
	pfree(argvlen);
	if (reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t) nkeys)
	{
		redis_unexpected_reply(WHAT_GET, reply);
		return;
	}
	for (int i = 0; i < nkeys; i++)
		if (reply->element[i]->type == REDIS_REPLY_STRING)
			values[i] = reply_text(reply->element[i], reply);
	freeReplyObject(reply);
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
	reply = redis_command(WHAT_SET, ttl > 0 ? 5 : 3, argv, argvlen);
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

	return integer_reply(WHAT_DEL,
						 key_command(WHAT_DEL, "UNLINK", key, keylen),
						 &removed) && removed > 0;
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

/* Appends s taken literally to a Redis MATCH pattern. */
static void
append_literal(StringInfo pattern, const char *s, int len)
{
	for (int i = 0; i < len; i++)
	{
		if (strchr("*?[]\\", s[i]) != NULL)
			appendStringInfoChar(pattern, '\\');
		appendStringInfoChar(pattern, s[i]);
	}
}

/* A MATCH pattern: the escaped key prefix, then "tail" as a pattern. */
static StringInfo
match_pattern(const char *tail, int len)
{
	StringInfo	pattern = makeStringInfo();

	append_literal(pattern, cache_key_prefix, strlen(cache_key_prefix));
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

/* Every key starting with "prefix", taken literally. */
static int64
redis_invalidate_prefix(const char *prefix, int len)
{
	StringInfo	pattern = match_pattern("", 0);

	append_literal(pattern, prefix, len);
	appendStringInfoChar(pattern, '*');
	return scan_keys(WHAT_INVALIDATE, pattern, true);
}

static int64
redis_invalidate_pattern(const char *pattern, int len)
{
	return scan_keys(WHAT_INVALIDATE, match_pattern(pattern, len), true);
}

/*
 * Every key under cache_ext.key_prefix; with an empty prefix, every key of
 * the Redis database, as FLUSHDB would, but without blocking Redis.
 */
static int64
redis_flush(void)
{
	return scan_keys(WHAT_FLUSH, match_pattern("*", 1), true);
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
		cache_store_failure(CACHE_BACKEND_REDIS, WHAT_SIZE, "unexpected reply from Redis");
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
