/*-------------------------------------------------------------------------
 *
 * guc.c
 *		The cache_ext.* settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <unistd.h>

#include "cache_ext.h"
#include "miscadmin.h"
#include "utils/memutils.h"

/* cache_ext.shmem_size, in MB: block numbers are 32 bits */
#define SHMEM_SIZE_MIN_MB	8
#define SHMEM_SIZE_MAX_MB	(256 * 1024)

int			cache_backend = CACHE_BACKEND_SHMEM;
int			cache_default_ttl = 300;
int			cache_shmem_size_mb = 64;
int			cache_max_value_size = 1024 * 1024;
char	   *cache_redis_url = NULL;
int			cache_redis_connect_timeout = 1000;
int			cache_redis_command_timeout = 500;
char	   *cache_key_prefix = NULL;
int			cache_on_error = CACHE_ON_ERROR_WARN;

static const struct config_enum_entry backend_options[] = {
	{"shmem", CACHE_BACKEND_SHMEM, false},
	{"redis", CACHE_BACKEND_REDIS, false},
	{NULL, 0, false}
};

static const struct config_enum_entry on_error_options[] = {
	{"warn", CACHE_ON_ERROR_WARN, false},
	{"ignore", CACHE_ON_ERROR_IGNORE, false},
	{"error", CACHE_ON_ERROR_ERROR, false},
	{NULL, 0, false}
};

/*
 * cache_ext.shmem_size as postgresql.conf, ALTER SYSTEM or the command line
 * gave it, checked before it is defined.  Defining it with a value out of
 * range or not a size would only WARN and keep the default: a store of
 * another size than asked, noticed (if ever) in the log.  A store the
 * server cannot honour stops it from starting instead, saying why.
 */
static void
check_shmem_size_setting(void)
{
	const char *raw = GetConfigOption("cache_ext.shmem_size", true, false);
	const char *hint = NULL;
	int			mb;
	long		pages = sysconf(_SC_PHYS_PAGES);
	long		pagesize = sysconf(_SC_PAGESIZE);

	if (raw == NULL)
		return;					/* not set: the default */
	if (!parse_int(raw, &mb, GUC_UNIT_MB, &hint))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for parameter \"cache_ext.shmem_size\": \"%s\"", raw),
				 hint ? errhint("%s", _(hint)) :
				 errhint("Give a size from 8MB to 256GB, such as 64MB or 2GB.")));
	if (mb < SHMEM_SIZE_MIN_MB)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cache_ext.shmem_size must be at least 8MB, not \"%s\"", raw),
				 errdetail("The shared-memory store needs 8MB for its index and enough blocks to be useful."),
				 errhint("Set cache_ext.shmem_size to 8MB or more, or remove the setting for the default of 64MB.")));
	if (mb > SHMEM_SIZE_MAX_MB)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cache_ext.shmem_size must be at most 256GB, not \"%s\"", raw),
				 errdetail("The shared-memory store numbers its blocks with 32 bits."),
				 errhint("Set cache_ext.shmem_size to 256GB or less; for more, use the Redis store.")));
	if (pages > 0 && pagesize > 0 &&
		(uint64) mb * 1024 * 1024 > (uint64) pages * pagesize)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("cache_ext.shmem_size (\"%s\") is larger than this machine's memory (%llu MB)",
						raw, (unsigned long long) ((uint64) pages * pagesize / (1024 * 1024))),
				 errdetail("The shared-memory store is allocated whole when the server starts."),
				 errhint("Set cache_ext.shmem_size to a part of the memory that leaves room for shared_buffers and the sessions.")));
}

void
cache_define_gucs(void)
{
	/*
	 * Choosing Redis is a privilege: Redis holds the application's own keys
	 * (sessions, tokens) under the server's credentials.  PGC_SUSET lets a
	 * superuser grant it the PostgreSQL 15 way (GRANT SET ON PARAMETER
	 * cache_ext.backend TO role) or set it with ALTER DATABASE/ROLE.
	 */
	DefineCustomEnumVariable("cache_ext.backend",
							 "Where this session's values live: shmem or redis.",
							 NULL,
							 &cache_backend,
							 CACHE_BACKEND_SHMEM,
							 backend_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("cache_ext.default_ttl",
							"Time to live used when a call passes no TTL; 0 means never expires.",
							NULL,
							&cache_default_ttl,
							300, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/*
	 * A restart-only setting can only be defined while preloading; loaded
	 * later, the store it sizes does not exist anyway.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		check_shmem_size_setting();
		DefineCustomIntVariable("cache_ext.shmem_size",
								"Size of the shared-memory store (entries, values and index).",
								NULL,
								&cache_shmem_size_mb,
								64, SHMEM_SIZE_MIN_MB, SHMEM_SIZE_MAX_MB,
								PGC_POSTMASTER,
								GUC_UNIT_MB,
								NULL, NULL, NULL);
	}

	DefineCustomIntVariable("cache_ext.max_value_size",
							"Values larger than this are not stored.",
							NULL,
							&cache_max_value_size,
							1024 * 1024, 0, MaxAllocSize / 2,
							PGC_USERSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomStringVariable("cache_ext.redis_url",
							   "Redis server: redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]; empty for none.",
							   NULL,
							   &cache_redis_url,
							   "",
							   PGC_SUSET,
							   0,
							   cache_redis_check_url,
							   cache_redis_assign_url,
							   cache_redis_show_url);

	DefineCustomIntVariable("cache_ext.redis_connect_timeout",
							"How long connecting to Redis may take.",
							NULL,
							&cache_redis_connect_timeout,
							1000, 1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("cache_ext.redis_command_timeout",
							"How long one Redis call may wait for its answer.",
							NULL,
							&cache_redis_command_timeout,
							500, 1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("cache_ext.key_prefix",
							   "Prepended to every Redis key.",
							   NULL,
							   &cache_key_prefix,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("cache_ext.on_error",
							 "What a store failure does: warn, ignore or error.",
							 NULL,
							 &cache_on_error,
							 CACHE_ON_ERROR_WARN,
							 on_error_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("cache_ext");
}
