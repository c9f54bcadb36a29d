/*-------------------------------------------------------------------------
 *
 * trigger.h
 *		Declarations shared by trigger.c (the trigger functions, attaching
 *		and detaching) and trigger_ddl.c (partitions and schema changes).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHE_TRIGGER_H
#define CACHE_TRIGGER_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"

/*
 * The names of the triggers the attach functions create; cache_detach()
 * drops these.  They start with "cache_" so that \d shows them together,
 * and AFTER ROW triggers fire in name order, so on a table with both an
 * invalidation and a write-through template, the invalidation runs first
 * and the write-through value is stored last.
 *
 * TRIGGER_PARTITION is not made by cache_attach() on the table it is on:
 * every partition of an attached partitioned table gets one (see
 * trigger_ddl.c), because PostgreSQL clones row triggers to partitions
 * but not the TRUNCATE trigger.
 */
#define TRIGGER_STMT			"cache_invalidate_stmt"
#define TRIGGER_REPLICA			"cache_invalidate_replica"
#define TRIGGER_ROW				"cache_invalidate_row"
#define TRIGGER_TRUNCATE		"cache_invalidate_truncate"
#define TRIGGER_PARTITION		"cache_invalidate_partition"
#define TRIGGER_WRITE			"cache_write_through"
#define TRIGGER_WRITE_TRUNCATE	"cache_write_through_truncate"

typedef enum CacheTargetKind
{
	CACHE_TARGET_PREFIX,		/* no placeholder: every key starting with it */
	CACHE_TARGET_TEMPLATE		/* "{column}" placeholders: one key per row */
} CacheTargetKind;

/* One "{column}" of a key template, with the literal text before it. */
typedef struct TemplateColumn
{
	int			litoff;			/* literal text before the placeholder */
	int			litlen;
	char	   *name;
	AttrNumber	attnum;
	FmgrInfo	outfunc;
} TemplateColumn;

/* A trigger argument: a prefix or a key template. */
typedef struct CacheTarget
{
	CacheTargetKind kind;
	char	   *text;			/* as written, NUL-terminated */
	int			len;
	int			prefixlen;		/* bytes before the first "{"; len for a
								 * prefix */
	int			ncols;
	TemplateColumn *cols;
	int			tailoff;		/* literal text after the last placeholder */
} CacheTarget;

/* trigger.c */
extern void cache_parse_target(const char *str, int len, CacheTarget *t);
extern const char *cache_missing_column(CacheTarget *t, Relation rel);

/* trigger_ddl.c */
typedef enum CacheTriggerOwnership
{
	CACHE_TRIGGER_ABSENT,
	CACHE_TRIGGER_OWN,
	CACHE_TRIGGER_CLONED		/* by PostgreSQL, from the partitioned table */
} CacheTriggerOwnership;

extern CacheTriggerOwnership cache_trigger_ownership(Oid relid,
													 const char *name);
extern Oid	cache_trigger_origin(Oid relid, const char *name);
extern List *cache_written_prefix_once(List *done, const char *prefix,
									   int len, bool spares_row_images);
extern char *cache_qualified_name(Oid relid);
extern void cache_run_sql(const char *sql);
extern void cache_run_sql_as_owner(Oid relid, const char *sql);
extern void cache_sync_partition_triggers(Oid relid, Oid nspid);

#endif							/* CACHE_TRIGGER_H */
