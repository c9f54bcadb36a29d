/*-------------------------------------------------------------------------
 *
 * trigger_ddl.c
 *		What keeps cache_ext's triggers right when tables change: the
 *		TRUNCATE triggers of partitions, the invalidation that attaching or
 *		detaching a partition implies, and the check that a schema change
 *		does not break a key template.  The event trigger function
 *		cache_ddl_command_end() and the trigger function
 *		cache_invalidate_partition() are here.
 *
 * Partitions.  PostgreSQL clones the row triggers of a partitioned table
 * to each of its partitions, existing or created or attached later, so a
 * write aimed at a partition fires them (cache_attach() puts every target
 * of a partitioned table in its row trigger for that reason).  TRUNCATE
 * triggers are not cloned: each partition of an attached partitioned
 * table, at any depth, gets cache_invalidate_partition, AFTER TRUNCATE,
 * which invalidates what a TRUNCATE of each of its ancestors would.  It
 * reads the ancestors' triggers when it fires, rather than holding a copy
 * of their targets, so that it never goes stale when an ancestor is
 * attached again with other targets or detached.  cache_attach() and
 * cache_detach() create and drop these triggers on the partitions there
 * are, and the event trigger on those created, attached or detached later.
 *
 * Attaching or detaching a partition changes the rows of the partitioned
 * table and of its ancestors as much as a TRUNCATE or a bulk load does:
 * their targets are invalidated as a TRUNCATE of them would.  So does
 * dropping a partition (dropping old partitions is how partitioned tables
 * are usually pruned), or an attached table itself; that is done at
 * ddl_command_start, while the partition's ancestors can still be found.
 *
 * Schema changes.  A key template names columns, and a write to a table
 * whose template names a column it no longer has fails.  After ALTER
 * TABLE ... DROP COLUMN or RENAME COLUMN the event trigger checks the
 * templates of the table and its partitions, and raises an ERROR naming
 * the template, the trigger and the table: ddl_command_end runs in the
 * command's transaction, so the change is rolled back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "cache.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/deparse_utility.h"
#include "trigger.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(sql_cache_invalidate_partition);
PG_FUNCTION_INFO_V1(sql_cache_ddl_command_end);
PG_FUNCTION_INFO_V1(sql_cache_ddl_command_start);

/* One row of pg_trigger, as far as we need it. */
typedef struct TriggerRow
{
	char	   *name;
	bool		isclone;		/* made by PostgreSQL from a parent's */
	int16		type;
	char		enabled;
	Oid			func;
	int			nargs;
	char	  **args;
} TriggerRow;

/* The extension's trigger functions, in the schema it is installed in. */
typedef struct ExtFunctions
{
	Oid			invalidate;
	Oid			write_through;
} ExtFunctions;

/* ---- helpers shared with trigger.c ---- */

/* schema.table, quoted as needed, for SQL we run */
char *
cache_qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

void
cache_run_sql(const char *sql)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc < 0)
		elog(ERROR, "cache_ext: SPI_execute failed (%d): %s", rc, sql);
}

/*
 * Run a command on a table as the table's owner.  Used for what attaching
 * implies beyond CREATE TRIGGER (ENABLE ALWAYS, which needs ownership; the
 * triggers of partitions, which PostgreSQL itself clones and drops without
 * checking the partitions' privileges), once the privilege to attach has
 * been checked on the table the caller named.  An error restores the
 * user ID with the (sub)transaction's abort.
 */
void
cache_run_sql_as_owner(Oid relid, const char *sql)
{
	HeapTuple	tuple;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	cache_run_sql(sql);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/* The function name() of no arguments in schema nspid, or InvalidOid. */
static Oid
ext_function(Oid nspid, const char *name)
{
	return GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
						   CStringGetDatum(name),
						   PointerGetDatum(buildoidvector(NULL, 0)),
						   ObjectIdGetDatum(nspid));
}

static void
ext_functions(Oid nspid, ExtFunctions *funcs)
{
	funcs->invalidate = ext_function(nspid, "cache_invalidate");
	funcs->write_through = ext_function(nspid, "cache_write_through");
}

/*
 * The triggers of relid (or only the one called name), read from pg_trigger
 * through its index: that needs no lock on relid, whose triggers we read
 * but do not fire (an ancestor of a partition being truncated, say).
 */
static List *
relation_triggers(Oid relid, const char *name)
{
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tuple;
	List	   *result = NIL;

	ScanKeyInit(&keys[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	if (name != NULL)
		ScanKeyInit(&keys[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber,
					F_NAMEEQ, CStringGetDatum(name));
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, NULL,
							  name != NULL ? 2 : 1, keys);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tuple);
		TriggerRow *row = palloc0(sizeof(TriggerRow));

		row->name = pstrdup(NameStr(tg->tgname));
		row->isclone = OidIsValid(tg->tgparentid);
		row->type = tg->tgtype;
		row->enabled = tg->tgenabled;
		row->func = tg->tgfoid;
		row->nargs = tg->tgnargs;
		if (row->nargs > 0)
		{
			bool		isnull;
			Datum		datum;
			char	   *p;

			/* NUL-terminated strings one after another, as in relcache.c */
			datum = fastgetattr(tuple, Anum_pg_trigger_tgargs,
								RelationGetDescr(tgrel), &isnull);
			if (isnull)
				elog(ERROR, "tgargs is null for trigger \"%s\" of relation %u",
					 row->name, relid);
			p = VARDATA_ANY(DatumGetByteaPP(datum));
			row->args = palloc(row->nargs * sizeof(char *));
			for (int i = 0; i < row->nargs; i++)
			{
				row->args[i] = pstrdup(p);
				p += strlen(p) + 1;
			}
		}
		result = lappend(result, row);
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return result;
}

/* Has relid a trigger of that name, and is it its own? */
CacheTriggerOwnership
cache_trigger_ownership(Oid relid, const char *name)
{
	List	   *rows = relation_triggers(relid, name);

	if (rows == NIL)
		return CACHE_TRIGGER_ABSENT;
	return ((TriggerRow *) linitial(rows))->isclone ?
		CACHE_TRIGGER_CLONED : CACHE_TRIGGER_OWN;
}

/*
 * The ancestor of partition relid whose own trigger of that name relid's
 * was cloned from (InvalidOid if none).
 */
Oid
cache_trigger_origin(Oid relid, const char *name)
{
	ListCell   *lc;

	foreach(lc, get_partition_ancestors(relid))
	{
		if (cache_trigger_ownership(lfirst_oid(lc), name) == CACHE_TRIGGER_OWN)
			return lfirst_oid(lc);
	}
	return InvalidOid;
}

/*
 * How many of a trigger's arguments are targets, if it is a trigger with
 * targets of its own (not a clone, whose parent is looked at instead): all
 * for cache_invalidate(), the template for cache_write_through(); -1 for
 * any other trigger.
 */
static int
trigger_targets(TriggerRow *row, ExtFunctions *funcs)
{
	if (row->isclone)
		return -1;
	if (row->func == funcs->invalidate && OidIsValid(row->func))
		return row->nargs;
	if (row->func == funcs->write_through && OidIsValid(row->func))
		return Min(row->nargs, 1);
	return -1;
}

/*
 * Invalidate a prefix by a write, unless one already invalidated by this
 * call (in done, a list of strings) covers it: "users:" and the template
 * "users:{id}" truncate the same keys.  Returns done with the prefix added.
 */
List *
cache_written_prefix_once(List *done, const char *prefix, int len,
						  bool spares_row_images)
{
	ListCell   *lc;

	foreach(lc, done)
	{
		const char *earlier = lfirst(lc);
		int			earlierlen = strlen(earlier);

		if (earlierlen <= len && memcmp(earlier, prefix, earlierlen) == 0)
			return done;
	}
	cache_written_prefix(prefix, len, spares_row_images);
	return lappend(done, pnstrdup(prefix, len));
}

/* Would the trigger manager fire a trigger with this tgenabled now? */
static bool
fires_now(char enabled)
{
	if (enabled == TRIGGER_DISABLED)
		return false;
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return enabled == TRIGGER_FIRES_ON_REPLICA ||
			enabled == TRIGGER_FIRES_ALWAYS;
	return enabled == TRIGGER_FIRES_ON_ORIGIN ||
		enabled == TRIGGER_FIRES_ALWAYS;
}

/*
 * Invalidate, as a TRUNCATE does, every target of the cache_ext triggers
 * of relid's ancestors (and of relid itself if include_self): each prefix,
 * and each template up to its first placeholder.  truncate_only: only the
 * triggers that a TRUNCATE of that ancestor would fire now.
 */
static void
invalidate_ancestors(Oid relid, bool include_self, bool truncate_only,
					 ExtFunctions *funcs)
{
	List	   *rels = get_partition_ancestors(relid);
	List	   *done = NIL;
	ListCell   *lc;

	if (include_self)
		rels = lcons_oid(relid, rels);
	foreach(lc, rels)
	{
		ListCell   *tc;

		foreach(tc, relation_triggers(lfirst_oid(lc), NULL))
		{
			TriggerRow *row = lfirst(tc);
			int			ntargets = trigger_targets(row, funcs);

			if (ntargets <= 0)
				continue;
			if (truncate_only &&
				(!TRIGGER_FOR_TRUNCATE(row->type) || !fires_now(row->enabled)))
				continue;
			for (int i = 0; i < ntargets; i++)
			{
				CacheTarget t;

				cache_parse_target(row->args[i], strlen(row->args[i]), &t);
				done = cache_written_prefix_once(done, t.text, t.prefixlen,
												 false);
			}
		}
	}
}

/*
 * Does relid need cache_invalidate_partition: is it a partition (not a
 * foreign one, which cannot have TRUNCATE triggers) with an ancestor whose
 * own cache_ext triggers act on TRUNCATE?
 */
static bool
needs_partition_trigger(Oid relid, ExtFunctions *funcs)
{
	ListCell   *lc;

	if (!get_rel_relispartition(relid) ||
		get_rel_relkind(relid) == RELKIND_FOREIGN_TABLE)
		return false;
	foreach(lc, get_partition_ancestors(relid))
	{
		ListCell   *tc;

		foreach(tc, relation_triggers(lfirst_oid(lc), NULL))
		{
			TriggerRow *row = lfirst(tc);

			if (trigger_targets(row, funcs) > 0 &&
				TRIGGER_FOR_TRUNCATE(row->type))
				return true;
		}
	}
	return false;
}

/*
 * Give relid and each of its partitions, at any depth, the TRUNCATE
 * trigger it needs, and drop those no longer needed (a partition detached,
 * or whose ancestors were detached).  Run as each partition's owner, as
 * PostgreSQL clones and drops the row triggers of partitions.
 */
void
cache_sync_partition_triggers(Oid relid, Oid nspid)
{
	ExtFunctions funcs;
	List	   *rels;
	ListCell   *lc;
	const char *funcname;

	ext_functions(nspid, &funcs);
	funcname = quote_qualified_identifier(get_namespace_name(nspid),
										  "cache_invalidate_partition");
	rels = find_all_inheritors(relid, ShareRowExclusiveLock, NULL);

	SPI_connect();
	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);
		List	   *have = relation_triggers(rel, TRIGGER_PARTITION);
		bool		need = needs_partition_trigger(rel, &funcs);
		char	   *table = cache_qualified_name(rel);

		if (need && have == NIL)
		{
			cache_run_sql_as_owner(rel,
								   psprintf("CREATE TRIGGER %s AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()",
											TRIGGER_PARTITION, table, funcname));
			cache_run_sql_as_owner(rel,
								   psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER %s",
											table, TRIGGER_PARTITION));
		}
		else if (!need && have != NIL)
			cache_run_sql_as_owner(rel,
								   psprintf("DROP TRIGGER %s ON %s",
											TRIGGER_PARTITION, table));
	}
	SPI_finish();
}

/*
 * cache_invalidate_partition() trigger, AFTER TRUNCATE FOR EACH STATEMENT
 * on a partition: invalidate what a TRUNCATE of each of its ancestors
 * would.  (A TRUNCATE of an ancestor fires this too, on each partition:
 * the coherence layer merges a write's repeated identical invalidations.)
 */
Datum
sql_cache_invalidate_partition(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	ExtFunctions funcs;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cache_invalidate_partition() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be fired AFTER TRUNCATE FOR EACH STATEMENT to use cache_invalidate_partition()",
						trigdata->tg_trigger->tgname,
						RelationGetRelationName(trigdata->tg_relation))));

	ext_functions(get_func_namespace(fcinfo->flinfo->fn_oid), &funcs);
	invalidate_ancestors(RelationGetRelid(trigdata->tg_relation), false, true,
						 &funcs);
	return PointerGetDatum(NULL);
}

/*
 * After a command that may have dropped or renamed columns of relid: every
 * key template of the cache_ext triggers of relid and its partitions must
 * still name columns that exist.
 */
static void
check_templates(Oid relid, ExtFunctions *funcs)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, AccessShareLock, NULL))
	{
		Relation	rel = relation_open(lfirst_oid(lc), NoLock);
		ListCell   *tc;

		foreach(tc, relation_triggers(RelationGetRelid(rel), NULL))
		{
			TriggerRow *row = lfirst(tc);
			int			ntargets = trigger_targets(row, funcs);

			for (int i = 0; i < ntargets; i++)
			{
				CacheTarget t;
				const char *column;
				bool		attached;

				cache_parse_target(row->args[i], strlen(row->args[i]), &t);
				column = cache_missing_column(&t, rel);
				if (column == NULL)
					continue;
				attached = (strcmp(row->name, TRIGGER_STMT) == 0 ||
							strcmp(row->name, TRIGGER_REPLICA) == 0 ||
							strcmp(row->name, TRIGGER_ROW) == 0 ||
							strcmp(row->name, TRIGGER_TRUNCATE) == 0 ||
							strcmp(row->name, TRIGGER_WRITE) == 0 ||
							strcmp(row->name, TRIGGER_WRITE_TRUNCATE) == 0);
				ereport(ERROR,
						(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
						 errmsg("cannot drop or rename column \"%s\" of table \"%s\" because key template \"%s\" of trigger \"%s\" names it",
								column, RelationGetRelationName(rel),
								t.text, row->name),
						 errdetail("Every later write to the table would fail."),
						 attached ?
						 errhint("Run cache_detach('%s') before this command and attach the table again naming the new column after it.",
								 cache_qualified_name(RelationGetRelid(rel))) :
						 errhint("Drop trigger \"%s\" before this command and create it again naming the new column after it.",
								 row->name)));
			}
		}
		relation_close(rel, NoLock);
	}
}

/* What one command collected by the event trigger means for us. */
static void
handle_command(CollectedCommand *cmd, ExtFunctions *funcs, Oid nspid)
{
	ListCell   *lc;
	Oid			relid;

	if (cmd->type == SCT_Simple)
	{
		if (cmd->d.simple.address.classId != RelationRelationId)
			return;
		relid = cmd->d.simple.address.objectId;

		/* CREATE [FOREIGN] TABLE ... PARTITION OF */
		if ((IsA(cmd->parsetree, CreateStmt) ||
			 IsA(cmd->parsetree, CreateForeignTableStmt)) &&
			((CreateStmt *) cmd->parsetree)->partbound != NULL)
			cache_sync_partition_triggers(relid, nspid);
		else if (IsA(cmd->parsetree, RenameStmt) &&
				 ((RenameStmt *) cmd->parsetree)->renameType == OBJECT_COLUMN)
			check_templates(relid, funcs);
		return;
	}
	if (cmd->type != SCT_AlterTable ||
		cmd->d.alterTable.classId != RelationRelationId)
		return;

	relid = cmd->d.alterTable.objectId;
	foreach(lc, cmd->d.alterTable.subcmds)
	{
		CollectedATSubcmd *sub = lfirst(lc);
		AlterTableCmd *atc = (AlterTableCmd *) sub->parsetree;
		Oid			partition;

		if (!IsA(atc, AlterTableCmd))
			continue;
		switch (atc->subtype)
		{
			case AT_AttachPartition:
			case AT_DetachPartition:
			case AT_DetachPartitionFinalize:
				/* ALTER INDEX ... ATTACH PARTITION changes no rows */
				if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
					break;
				partition = InvalidOid;
				if (sub->address.classId == RelationRelationId)
					partition = sub->address.objectId;
				if (!OidIsValid(partition))
					partition = RangeVarGetRelid(((PartitionCmd *) atc->def)->name,
												 NoLock, true);
				invalidate_ancestors(relid, true, false, funcs);
				if (OidIsValid(partition))
					cache_sync_partition_triggers(partition, nspid);
				break;
			case AT_DropColumn:
			case AT_DropColumnRecurse:
				check_templates(relid, funcs);
				break;
			default:
				break;
		}
	}
}

/*
 * The DDL that our own handling runs (creating and dropping triggers of
 * partitions) fires the event trigger again; there is nothing to do then.
 */
static int	ddl_depth = 0;

/*
 * cache_ddl_command_end() event trigger, ON ddl_command_end for CREATE
 * TABLE, ALTER TABLE and their FOREIGN TABLE forms.
 */
Datum
sql_cache_ddl_command_end(PG_FUNCTION_ARGS)
{
	Oid			nspid;
	ExtFunctions funcs;
	CollectedCommand **cmds;
	uint64		ncmds;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cache_ddl_command_end() must be called as an event trigger")));
	if (ddl_depth > 0)
		PG_RETURN_VOID();

	nspid = get_func_namespace(fcinfo->flinfo->fn_oid);
	ext_functions(nspid, &funcs);

	ddl_depth++;
	PG_TRY();
	{
		SPI_connect();
		if (SPI_execute("SELECT command FROM pg_catalog.pg_event_trigger_ddl_commands()",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "cache_ext: could not read the commands of the event trigger");

		/* pg_ddl_command is a pointer to the collected command, by value */
		ncmds = SPI_processed;
		cmds = palloc(Max(ncmds, 1) * sizeof(CollectedCommand *));
		for (uint64 i = 0; i < ncmds; i++)
		{
			bool		isnull;

			cmds[i] = (CollectedCommand *)
				DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 1,
											  &isnull));
		}
		for (uint64 i = 0; i < ncmds; i++)
			handle_command(cmds[i], &funcs, nspid);
		SPI_finish();
	}
	PG_FINALLY();
	{
		ddl_depth--;
	}
	PG_END_TRY();

	PG_RETURN_VOID();
}

/*
 * cache_ddl_command_start() event trigger, ON ddl_command_start for DROP
 * TABLE and DROP FOREIGN TABLE: a dropped table takes its rows with it, as
 * TRUNCATE does, from itself and from the partitioned tables it belongs
 * to.  Invalidated before the drop, which may still fail: that only costs
 * misses.  Only for tables the current user owns, the tables the DROP can
 * succeed on, so that naming a table in a DROP that is refused cannot be
 * used to empty the cache.
 */
Datum
sql_cache_ddl_command_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;
	ExtFunctions funcs;
	DropStmt   *stmt;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cache_ddl_command_start() must be called as an event trigger")));
	if (!IsA(trigdata->parsetree, DropStmt))
		PG_RETURN_VOID();
	stmt = (DropStmt *) trigdata->parsetree;
	if (stmt->removeType != OBJECT_TABLE &&
		stmt->removeType != OBJECT_FOREIGN_TABLE)
		PG_RETURN_VOID();

	ext_functions(get_func_namespace(fcinfo->flinfo->fn_oid), &funcs);
	foreach(lc, stmt->objects)
	{
		RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		if (OidIsValid(relid) && pg_class_ownercheck(relid, GetUserId()))
			invalidate_ancestors(relid, true, false, &funcs);
	}
	PG_RETURN_VOID();
}
