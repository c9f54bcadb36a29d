/*-------------------------------------------------------------------------
 *
 * redis_conn.c
 *		This process's connection to Redis: cache_ext.redis_url, sockets,
 *		timeouts, and round trips (redis_run()), for the store
 *		(store_redis.c) and the worker (redis_worker.c).
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
 * command.  Failures are reported through cache_store_failure(), which
 * follows cache_ext.on_error.
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
#include "redis_conn.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

void
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
static bool in_retry_pause = false; /* it was refused in the retry pause */
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
			return "An IPv6 address must end with \"]\".";
		s++;
		if (host_end + 1 < end)
		{
			if (host_end[1] != ':')
				return "There are unexpected characters after \"]\".";
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
		return "The host is missing.";
	u->host = put(cursor, s, host_end - s);
	u->port = DEFAULT_PORT;
	if (port && !parse_number(port, end, 1, 65535, &u->port))
		return "The port must be a number from 1 to 65535.";
	return NULL;
}

/* unix:///path/to/socket[?db=N]: s points at the path */
static const char *
parse_unix_path(const char *s, RedisUrl *u, char **cursor)
{
	const char *query = strchr(s, '?');
	const char *end = query ? query : s + strlen(s);

	if (*s != '/')
		return "A unix socket URL needs an absolute path, as in unix:///path/to/redis.sock.";
	if (end - s >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
		return "The socket path is too long.";
	u->host = put(cursor, s, end - s);
	if (query == NULL)
		return NULL;
	if (strncmp(query, "?db=", 4) != 0 ||
		!parse_number(query + 4, query + strlen(query), 0, INT_MAX, &u->db))
		return "The only parameter of a unix socket URL is db=N, N a database number.";
	return NULL;
}

/* /N after the host, or nothing */
static const char *
parse_db(const char *s, RedisUrl *u)
{
	if (*s == '\0' || strcmp(s, "/") == 0)
		return NULL;
	if (!parse_number(s + 1, s + strlen(s), 0, INT_MAX, &u->db))
		return "The database must be a number after \"/\", as in redis://host:6379/0.";
	return NULL;
}

/* [user]:password@, from "s" to the "@" at "at" */
static const char *
parse_userinfo(const char *s, const char *at, RedisUrl *u, char **cursor)
{
	const char *colon = memchr(s, ':', at - s);

	if (colon == NULL)
		return "A password must follow a colon, as in redis://:password@host.";
	if (colon > s && (u->user = put_decoded(cursor, s, colon)) == NULL)
		return "The user name has a bad %-escape.";
	if (at > colon + 1 && (u->password = put_decoded(cursor, colon + 1, at)) == NULL)
		return "The password has a bad %-escape.";
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
		return "The URL must start with redis:// or unix://.";

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
			return "A unix socket URL has no host: use unix:///path/to/redis.sock.";
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
		return reject_url("Out of memory.");
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

	/*
	 * ALTER DATABASE/ROLE ... SET keeps the value verbatim in
	 * pg_db_role_setting, which every role can read (\drds): a password
	 * must not go there.  (Values already there are still honoured.)
	 */
	if (source == PGC_S_TEST && u->password != NULL)
	{
		free(u);
		GUC_check_errmsg("a Redis password cannot be stored with ALTER DATABASE or ALTER ROLE");
		GUC_check_errdetail("Such settings are stored verbatim in pg_db_role_setting, which every role can read.");
		GUC_check_errhint("Set cache_ext.redis_url with ALTER SYSTEM or in postgresql.conf, which only the server reads, or use a Redis ACL user.");
		return false;
	}

	if (u->masked != u->raw)
	{
		masked = strdup(u->masked);
		if (masked == NULL)
		{
			free(u);
			return reject_url("Out of memory.");
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

	size_t		len;

	va_start(args, fmt);
	vsnprintf(conn_error, sizeof(conn_error), fmt, args);
	va_end(args);

	/* a DETAIL is a sentence, also when it ends with a system's message */
	len = strlen(conn_error);
	if (len > 0 && conn_error[len - 1] != '.' && len + 1 < sizeof(conn_error))
		strcpy(conn_error + len, ".");
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
				set_error("The wait for Redis was canceled.");
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
		set_error("Could not connect to Redis at %s: %s",
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
		set_error("Could not resolve Redis host \"%s\": %s",
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
			set_error("Authentication to Redis at %s failed: %s",
					  redis_url->target, replies[i]->str);
		else
			set_error("Could not select database %d on Redis at %s: %s",
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

	/* the commit-time repeat bounds its work as a whole, connecting included */
	if (cache_redis_deadline != 0 && cache_redis_deadline < deadline)
		deadline = cache_redis_deadline;

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
		set_error("Out of memory.");
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

/* ---- a second connection ---- */

/*
 * Exchanges this process's connection with the one held in *other, so that
 * redis_run() works on that one until the next exchange.  The worker holds
 * its tracking session this way (redis_tracking.c): opened, authenticated
 * and bounded by the same code as every other connection, with its own
 * back-off.  Whatever is in *other when it is first switched in must be
 * zeroed.
 */
void
redis_conn_switch(RedisConnSlot *other)
{
	RedisConnSlot mine;

	mine.conn = conn;
	mine.events = conn_events;
	mine.socket_pos = conn_socket_pos;
	mine.socket_event = conn_socket_event;
	mine.url = conn_url;
	mine.retry_after = retry_after;

	conn = other->conn;
	conn_events = other->events;
	conn_socket_pos = other->socket_pos;
	conn_socket_event = other->socket_event;
	conn_url = other->url;
	retry_after = other->retry_after;

	*other = mine;
}

/* Closes the current connection; the next call opens a new one. */
void
redis_conn_close(void)
{
	conn_close();
}

/* Why the last attempt on the current connection failed. */
const char *
redis_conn_error(void)
{
	return conn_error;
}

/* ---- round trips ---- */

static bool
io_failed(const char *doing)
{
	conn_lost = true;
	set_error("Could not %s Redis at %s: %s", doing, redis_url->target,
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
			set_error("Timed out writing to Redis at %s.", redis_url->target);
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
				set_error("Timed out waiting for a reply from Redis at %s.",
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
			/* Redis's own text ("NOAUTH Authentication required."): say who */
			char	   *msg = psprintf("Redis at %s answered: %.*s%s",
									   redis_url->target,
									   (int) replies[i]->len, replies[i]->str,
									   (replies[i]->len > 0 &&
										replies[i]->str[replies[i]->len - 1] == '.') ? "" : ".");

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
 * at once, saying that Redis was not asked (in_retry_pause).
 */
static bool
attempt(int ncmds, const RedisCmd *cmds, redisReply **replies)
{
	bool		reused = (conn != NULL);

	in_retry_pause = false;
	if (!cache_redis_configured())
	{
		set_error("No Redis is configured: cache_ext.redis_url is not set.");
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
	{
		/* not the last failure's message: Redis was not asked this time */
		set_error("Redis at %s was not asked: it failed less than %d ms ago, and is tried again at most once a second.",
				  redis_url->target, RETRY_INTERVAL_MS);
		in_retry_pause = true;
		return false;
	}
	if (cache_redis_deadline != 0 && GetCurrentTimestamp() >= cache_redis_deadline)
	{
		set_error("Out of time: the deadline of this commit-time work has passed.");
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
bool
redis_run(const char *what, int ncmds, const RedisCmd *cmds,
		  redisReply **replies)
{
	if (!redis_run_unchecked(what, ncmds, cmds, replies))
		return false;
	return no_error_reply(what, ncmds, replies);
}

/*
 * redis_run() that leaves error replies to the caller: true if every reply
 * arrived, Redis errors included (nothing reported).  For a command whose
 * refusal is not a failure of the store (the barrier: its caller falls
 * back to SCAN).
 */
bool
redis_run_unchecked(const char *what, int ncmds, const RedisCmd *cmds,
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
		if (in_retry_pause)
			cache_store_failure_again(CACHE_BACKEND_REDIS, what, conn_error);
		else
			cache_store_failure(CACHE_BACKEND_REDIS, what, conn_error);
	}
	return ok;
}

/* redis_run() for a single command: its reply, or NULL after a failure. */
redisReply *
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
void
redis_unexpected_reply(const char *what, redisReply *reply)
{
	int			type = reply->type;

	freeReplyObject(reply);
	cache_store_failure(CACHE_BACKEND_REDIS, what,
						psprintf("Redis at %s answered with a reply of unexpected type %d.",
								 redis_url->target, type));
}

/*
 * Appends s to a Redis SCAN MATCH pattern, taken literally (the glob's
 * special characters escaped).
 */
void
redis_match_literal(StringInfo pattern, const char *s, int len)
{
	for (int i = 0; i < len; i++)
	{
		if (strchr("*?[]\\", s[i]) != NULL)
			appendStringInfoChar(pattern, '\\');
		appendStringInfoChar(pattern, s[i]);
	}
}
