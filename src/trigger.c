/*-------------------------------------------------------------------------
 *
 * trigger.c
 *		Invalidation by triggers, and write-through: the trigger functions
 *		cache_invalidate() and cache_write_through(), and cache_attach(),
 *		cache_attach_write_through() and cache_detach(), which create and
 *		drop the triggers that use them.  Partitions and schema changes are
 *		in trigger_ddl.c.
 *
 * A trigger's arguments are targets.  A target without "{" is a prefix:
 * every key starting with it is invalidated.  A target with "{column}"
 * placeholders is a key template: for one row, the key is the template
 * with each placeholder replaced by that column's value, printed by its
 * type's output function ("users:by_id:{id}" -> "users:by_id:42").  The
 * column name is taken exactly as written (no case folding, no quotes);
 * a "}" outside a placeholder is an ordinary character.
 *
 * cache_invalidate() honours every target at every level.  FOR EACH ROW,
 * a template gives the keys of OLD and NEW, and a prefix is invalidated
 * once per statement (at the first row that fires).  FOR EACH STATEMENT,
 * and on TRUNCATE, a template is invalidated up to its first placeholder,
 * as a prefix.
 *
 * cache_attach() gives each trigger only the targets it is for, so that
 * nothing is invalidated more widely or more often than needed:
 *
 *	cache_invalidate_stmt		INSERT/UPDATE/DELETE, per statement: prefixes
 *	cache_invalidate_replica	the same per row, fired only when
 *								session_replication_role is "replica": the
 *								apply worker of a logical-replication
 *								subscription fires row triggers only
 *	cache_invalidate_row		INSERT/UPDATE/DELETE, per row: templates
 *	cache_invalidate_truncate	TRUNCATE: every target (a foreign table
 *								cannot have one)
 *
 * On a partitioned table, cache_invalidate_row holds the prefixes too and
 * there is no statement trigger: PostgreSQL clones row triggers to every
 * partition (existing, created or attached later), so that writes aimed
 * at a partition fire them, while a statement trigger fires only for
 * writes aimed at the table it is on.  TRUNCATE of a partition is covered
 * by cache_invalidate_partition (trigger_ddl.c).  Every trigger is ENABLE
 * ALWAYS (cache_invalidate_replica ENABLE REPLICA), so that changes made
 * with session_replication_role = replica invalidate too.
 *
 * Targets are parsed and their columns resolved once per statement: the
 * parsed form is kept in the trigger's FmgrInfo, which the executor keeps
 * for the statement (for the whole query, for AFTER triggers).
 *
 * The functions here call the front layer (cache.h), never the SQL
 * functions, so the coherence rules apply to them as to any other call:
 * invalidations act at once and again at commit, and a write-through set
 * made by the writing transaction takes effect when it commits.  They act
 * on every store a write invalidates, whatever the session's backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include "access/relation.h"
#include "cache.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "trigger.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(sql_cache_invalidate);
PG_FUNCTION_INFO_V1(sql_cache_write_through);
PG_FUNCTION_INFO_V1(sql_cache_attach);
PG_FUNCTION_INFO_V1(sql_cache_attach_write_through);
PG_FUNCTION_INFO_V1(sql_cache_detach);

/*
 * A trigger's parsed arguments, kept in fn_extra for the statement (for
 * AFTER triggers, the query), which is what makes prefixes_done mean
 * "once per statement".
 */
typedef struct TriggerTargets
{
	Oid			tgoid;			/* what they were parsed for */
	Oid			relid;
	MemoryContext cxt;			/* holds all of this */
	int			ntargets;
	CacheTarget *targets;
	int			nprefixes;
	int			ntemplates;
	bool		prefixes_done;	/* a row trigger invalidated them already */
	int			ttl;			/* cache_write_through: -1 = default */
} TriggerTargets;

/* What an error in a trigger's arguments says it happened in. */
typedef struct TriggerErrorContext
{
	const char *trigger;
	const char *table;
} TriggerErrorContext;

/* ---- targets: parsing, columns, keys ---- */

/*
 * Parse one target, checking its syntax (not its columns).  The result is
 * allocated in CurrentMemoryContext.
 */
void
cache_parse_target(const char *str, int len, CacheTarget *t)
{
	int			maxcols = 0;
	int			litstart = 0;
	int			litbytes;
	int			i;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cache_ext target must not be empty"),
				 errhint("A target is a key prefix such as \"users:\" or a key template such as \"users:by_id:{id}\".")));

	t->kind = CACHE_TARGET_PREFIX;
	t->text = pnstrdup(str, len);
	t->len = len;
	t->prefixlen = len;
	t->ncols = 0;
	for (i = 0; i < len; i++)
		maxcols += (str[i] == '{');
	t->cols = maxcols > 0 ? palloc0(maxcols * sizeof(TemplateColumn)) : NULL;

	i = 0;
	while (i < len)
	{
		const char *close;
		int			namelen;
		TemplateColumn *col;

		if (str[i] != '{')
		{
			i++;
			continue;
		}
		close = memchr(str + i + 1, '}', len - i - 1);
		if (close == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid key template \"%s\": \"{\" at byte %d is not closed",
							t->text, i + 1),
					 errhint("Write placeholders as {column}.")));
		namelen = close - (str + i + 1);
		if (namelen == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid key template \"%s\": empty placeholder \"{}\"",
							t->text),
					 errhint("Write placeholders as {column}.")));
		if (t->ncols == 0)
		{
			/*
			 * TRUNCATE invalidates a template by the text before its first
			 * placeholder; with none, that would be every key of the
			 * database, which a write to one table must not do.
			 */
			if (i == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid key template \"%s\": it must start with fixed text, not a placeholder",
								t->text),
						 errhint("Start the template with a prefix such as \"users:\"; TRUNCATE invalidates every key that starts with it.")));
			t->kind = CACHE_TARGET_TEMPLATE;
			t->prefixlen = i;
		}
		col = &t->cols[t->ncols++];
		col->litoff = litstart;
		col->litlen = i - litstart;
		col->name = pnstrdup(str + i + 1, namelen);
		col->attnum = InvalidAttrNumber;
		i = (close - str) + 1;
		litstart = i;
	}
	t->tailoff = litstart;

	/* every key built from it holds its fixed text, so that must fit */
	litbytes = len - t->tailoff;
	for (i = 0; i < t->ncols; i++)
		litbytes += t->cols[i].litlen;
	if (litbytes > CACHE_MAX_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("cache_ext target \"%.*s...\" is too long",
						pg_mbcliplen(t->text, len, 40), t->text),
				 errdetail("It has %d bytes of fixed text; keys are at most %d bytes long.",
						   litbytes, CACHE_MAX_KEY_LEN)));
}

/* A live column of rel named exactly so, or NULL. */
static Form_pg_attribute
find_column(Relation rel, const char *name)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);

	for (int a = 0; a < tupdesc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, a);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att;
	}
	return NULL;
}

/*
 * The first column a template names that rel does not have (dropped and
 * system columns are not found), or NULL if it has them all.
 */
const char *
cache_missing_column(CacheTarget *t, Relation rel)
{
	for (int c = 0; c < t->ncols; c++)
	{
		if (find_column(rel, t->cols[c].name) == NULL)
			return t->cols[c].name;
	}
	return NULL;
}

/*
 * Find the columns a template names in rel, and their output functions
 * (kept in cxt).  Columns are matched by their exact name.
 */
static void
resolve_columns(CacheTarget *t, Relation rel, MemoryContext cxt)
{
	for (int c = 0; c < t->ncols; c++)
	{
		TemplateColumn *col = &t->cols[c];
		Form_pg_attribute att = find_column(rel, col->name);
		Oid			typoutput;
		bool		typisvarlena;

		if (att == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of key template \"%s\" does not exist in table \"%s\"",
							col->name, t->text, RelationGetRelationName(rel)),
					 errhint("Column names in a template are matched exactly, including case.")));
		col->attnum = att->attnum;
		getTypeOutputInfo(att->atttypid, &typoutput, &typisvarlena);
		fmgr_info_cxt(typoutput, &col->outfunc, cxt);
	}
}

/*
 * Build a template's key for one row into buf.  False if the row has no
 * such key: a column it names is NULL (a key is never built from NULL),
 * or the key would be longer than keys may be, so it cannot be cached.
 */
static bool
build_key(CacheTarget *t, TupleTableSlot *slot, StringInfo buf)
{
	resetStringInfo(buf);
	for (int c = 0; c < t->ncols; c++)
	{
		TemplateColumn *col = &t->cols[c];
		Datum		value;
		bool		isnull;
		char	   *str;

		appendBinaryStringInfo(buf, t->text + col->litoff, col->litlen);
		value = slot_getattr(slot, col->attnum, &isnull);
		if (isnull)
			return false;
		str = OutputFunctionCall(&col->outfunc, value);
		appendStringInfoString(buf, str);
		pfree(str);
		if (buf->len > CACHE_MAX_KEY_LEN)
			return false;
	}
	appendBinaryStringInfo(buf, t->text + t->tailoff, t->len - t->tailoff);
	return buf->len <= CACHE_MAX_KEY_LEN;
}

/*
 * A TTL given as text (a write-through trigger's second argument): a
 * non-negative integer.
 */
static int
parse_ttl(const char *str)
{
	char	   *end;
	long		ttl;

	errno = 0;
	ttl = strtol(str, &end, 10);
	if (!isdigit((unsigned char) str[0]) || *end != '\0' ||
		errno == ERANGE || ttl > INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ttl \"%s\" for cache_write_through()", str),
				 errhint("Pass a number of seconds (0 never expires), or no ttl for cache_ext.default_ttl.")));
	return (int) ttl;
}

/* ---- the trigger functions ---- */

static void
trigger_error_callback(void *arg)
{
	TriggerErrorContext *ctx = (TriggerErrorContext *) arg;

	errcontext("cache_ext trigger \"%s\" on table \"%s\"",
			   ctx->trigger, ctx->table);
}

/*
 * The checks every firing makes: called by the trigger manager, AFTER the
 * event, for the events it handles.
 */
static TriggerData *
check_trigger_call(FunctionCallInfo fcinfo, const char *funcname)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be called as a trigger", funcname)));
	/* before the event, the row may still change or fail to be written */
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be fired AFTER the event to use %s()",
						trigdata->tg_trigger->tgname,
						RelationGetRelationName(trigdata->tg_relation),
						funcname)));
	return trigdata;
}

/*
 * The parsed arguments of the firing trigger: those kept from an earlier
 * row of this statement, or parsed, checked and resolved now.  The
 * trigger's OID and relation are checked because nothing forbids calling
 * one FmgrInfo for another trigger.  For cache_write_through(), the
 * arguments are one template and an optional TTL.
 */
static TriggerTargets *
get_trigger_targets(FunctionCallInfo fcinfo, TriggerData *trigdata,
					bool write_through)
{
	TriggerTargets *tt = (TriggerTargets *) fcinfo->flinfo->fn_extra;
	Trigger    *trigger = trigdata->tg_trigger;
	Relation	rel = trigdata->tg_relation;
	const char *funcname = write_through ? "cache_write_through" : "cache_invalidate";
	ErrorContextCallback errcallback;
	TriggerErrorContext errctx;
	MemoryContext cxt;
	MemoryContext oldcxt;
	int			ntargets;

	if (tt != NULL && tt->tgoid == trigger->tgoid &&
		tt->relid == RelationGetRelid(rel))
		return tt;
	if (tt != NULL)
	{
		fcinfo->flinfo->fn_extra = NULL;
		MemoryContextDelete(tt->cxt);
	}

	errctx.trigger = trigger->tgname;
	errctx.table = RelationGetRelationName(rel);
	errcallback.callback = trigger_error_callback;
	errcallback.arg = &errctx;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	if (write_through && (trigger->tgnargs < 1 || trigger->tgnargs > 2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s() takes a key template and an optional ttl, not %d arguments",
						funcname, trigger->tgnargs)));
	if (!write_through && trigger->tgnargs < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s() needs at least one target", funcname),
				 errhint("Pass key prefixes such as 'users:' or key templates such as 'users:by_id:{id}', or use cache_attach().")));

	/* a child of fn_mcxt, so that a failed parse leaks only until then */
	cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt,
								"cache_ext trigger targets",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	ntargets = write_through ? 1 : trigger->tgnargs;
	tt = palloc0(sizeof(TriggerTargets));
	tt->tgoid = trigger->tgoid;
	tt->relid = RelationGetRelid(rel);
	tt->cxt = cxt;
	tt->ntargets = ntargets;
	tt->targets = palloc0(ntargets * sizeof(CacheTarget));
	tt->ttl = -1;
	for (int i = 0; i < ntargets; i++)
	{
		CacheTarget *t = &tt->targets[i];
		const char *arg = trigger->tgargs[i];

		cache_parse_target(arg, strlen(arg), t);
		resolve_columns(t, rel, cxt);
		if (t->kind == CACHE_TARGET_TEMPLATE)
			tt->ntemplates++;
		else
			tt->nprefixes++;
	}
	if (write_through)
	{
		if (tt->ntemplates == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s() needs a key template with a {column} placeholder, not the prefix \"%s\"",
							funcname, tt->targets[0].text)));
		if (trigger->tgnargs > 1)
			tt->ttl = parse_ttl(trigger->tgargs[1]);
	}

	MemoryContextSwitchTo(oldcxt);
	error_context_stack = errcallback.previous;
	fcinfo->flinfo->fn_extra = tt;
	return tt;
}

/*
 * Invalidate every target as a prefix: a prefix whole, a template up to its
 * first placeholder, which is every key it can make.  That is what TRUNCATE
 * does, and what a statement trigger, which has no rows, does for a
 * template.  spares_row_images: see cache_written_prefix().
 */
static void
invalidate_as_prefixes(TriggerTargets *tt, bool spares_row_images)
{
	List	   *done = NIL;

	for (int i = 0; i < tt->ntargets; i++)
	{
		CacheTarget *t = &tt->targets[i];

		done = cache_written_prefix_once(done, t->text, t->prefixlen,
										 spares_row_images);
	}
	list_free_deep(done);
}

/*
 * cache_invalidate(VARIADIC targets) trigger.
 *
 * FOR EACH STATEMENT: invalidate each prefix, and each template up to its
 * first placeholder (after INSERT, UPDATE and DELETE too: a hand-written
 * statement trigger must not silently skip its templates).
 *
 * FOR EACH ROW: invalidate each prefix once per statement, at the first
 * row (AFTER ROW triggers fire when the statement has written all its
 * rows, so later rows change nothing that the invalidation missed), and
 * delete each template's key for OLD and for NEW (both on UPDATE, so that
 * changing a key column clears the old key and the new one; once if they
 * are the same key).
 */
Datum
sql_cache_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = check_trigger_call(fcinfo, "cache_invalidate");
	TriggerTargets *tt = get_trigger_targets(fcinfo, trigdata, false);
	TriggerEvent event = trigdata->tg_event;
	StringInfoData oldkey;
	StringInfoData newkey;

	if (TRIGGER_FIRED_FOR_STATEMENT(event))
	{
		invalidate_as_prefixes(tt, !TRIGGER_FIRED_BY_TRUNCATE(event));
		return PointerGetDatum(NULL);
	}

	if (tt->nprefixes > 0 && !tt->prefixes_done)
	{
		List	   *done = NIL;

		for (int i = 0; i < tt->ntargets; i++)
		{
			CacheTarget *t = &tt->targets[i];

			if (t->kind == CACHE_TARGET_PREFIX)
				done = cache_written_prefix_once(done, t->text, t->len, true);
		}
		list_free_deep(done);
		tt->prefixes_done = true;
	}
	if (tt->ntemplates == 0)
		return PointerGetDatum(NULL);

	initStringInfo(&oldkey);
	initStringInfo(&newkey);
	for (int i = 0; i < tt->ntargets; i++)
	{
		CacheTarget *t = &tt->targets[i];
		bool		have_old;
		bool		have_new = false;

		if (t->kind != CACHE_TARGET_TEMPLATE)
			continue;
		/* tg_trigslot is OLD, or NEW for an INSERT */
		have_old = build_key(t, trigdata->tg_trigslot, &oldkey);
		if (TRIGGER_FIRED_BY_UPDATE(event))
			have_new = build_key(t, trigdata->tg_newslot, &newkey);
		if (have_old)
			cache_written_key(oldkey.data, oldkey.len, t->prefixlen);
		if (have_new &&
			!(have_old && oldkey.len == newkey.len &&
			  memcmp(oldkey.data, newkey.data, oldkey.len) == 0))
			cache_written_key(newkey.data, newkey.len, t->prefixlen);
	}
	pfree(oldkey.data);
	pfree(newkey.data);

	return PointerGetDatum(NULL);
}

/*
 * cache_write_through(template [, ttl]) trigger, FOR EACH ROW after
 * INSERT, UPDATE or DELETE: store row_to_json(NEW) under NEW's key, and
 * remove OLD's key when the row is deleted or its key changed.  FOR EACH
 * STATEMENT after TRUNCATE: invalidate the template's fixed start.
 */
Datum
sql_cache_write_through(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = check_trigger_call(fcinfo, "cache_write_through");
	TriggerTargets *tt = get_trigger_targets(fcinfo, trigdata, true);
	TriggerEvent event = trigdata->tg_event;
	CacheTarget *t = &tt->targets[0];
	TupleTableSlot *newslot = NULL;
	StringInfoData oldkey;
	StringInfoData newkey;
	bool		have_old = false;
	bool		have_new = false;

	if (TRIGGER_FIRED_FOR_STATEMENT(event))
	{
		if (!TRIGGER_FIRED_BY_TRUNCATE(event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" on table \"%s\" must be FOR EACH ROW to use cache_write_through(), or FOR EACH STATEMENT on TRUNCATE only",
							trigdata->tg_trigger->tgname,
							RelationGetRelationName(trigdata->tg_relation))));
		invalidate_as_prefixes(tt, false);
		return PointerGetDatum(NULL);
	}

	initStringInfo(&oldkey);
	initStringInfo(&newkey);
	if (TRIGGER_FIRED_BY_INSERT(event))
		newslot = trigdata->tg_trigslot;
	else
	{
		have_old = build_key(t, trigdata->tg_trigslot, &oldkey);
		if (TRIGGER_FIRED_BY_UPDATE(event))
			newslot = trigdata->tg_newslot;
	}
	if (newslot != NULL)
		have_new = build_key(t, newslot, &newkey);

	if (have_old &&
		!(have_new && oldkey.len == newkey.len &&
		  memcmp(oldkey.data, newkey.data, oldkey.len) == 0))
		cache_written_key(oldkey.data, oldkey.len, t->prefixlen);

	if (have_new)
	{
		text	   *json;
		int			ttl = tt->ttl >= 0 ? tt->ttl : cache_default_ttl;

		json = DatumGetTextPP(DirectFunctionCall1(row_to_json,
												  ExecFetchSlotHeapTupleDatum(newslot)));

		/*
		 * A value that is not stored (too large, store unavailable) must
		 * not leave the previous version of the row behind: the front
		 * layer removes the key then.
		 */
		cache_written_row(newkey.data, newkey.len, t->prefixlen,
						  VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json), ttl);
	}

	return PointerGetDatum(NULL);
}

/* ---- attaching and detaching ---- */

/*
 * Open a table that the current user may create triggers on, locked as
 * CREATE TRIGGER locks it, so that its columns cannot change between
 * checking the templates and creating the triggers.  The privilege is
 * checked first so that a user without it cannot lock the table.
 */
static Relation
open_for_attach(Oid relid)
{
	AclResult	aclresult;
	Relation	rel;
	char		relkind;

	relkind = get_rel_relkind(relid);
	if (relkind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, get_relkind_objtype(relkind),
					   get_rel_name(relid));

	LockRelationOid(relid, ShareRowExclusiveLock);
	rel = relation_open(relid, NoLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE &&
		rel->rd_rel->relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errdetail("The triggers of cache_ext can only be attached to tables.")));
	return rel;
}

/*
 * A partition has the row triggers of its partitioned table, cloned under
 * the same names: attaching the partition itself would have to replace
 * them, which PostgreSQL refuses.  Say so in our words.
 */
static void
check_not_inherited(Relation rel, const char *const *names, int nnames)
{
	Oid			relid = RelationGetRelid(rel);

	for (int i = 0; i < nnames; i++)
	{
		if (cache_trigger_ownership(relid, names[i]) == CACHE_TRIGGER_CLONED)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"%s\" has trigger \"%s\" from the partitioned table it belongs to",
							RelationGetRelationName(rel), names[i]),
					 errdetail("Writes to a partition already invalidate the targets of its attached partitioned table."),
					 errhint("Attach the targets to partitioned table \"%s\" instead.",
							 get_rel_name(cache_trigger_origin(relid, names[i])))));
	}
}

/*
 * The schema of the extension's functions, found from the function being
 * called, so that the triggers name the trigger functions whatever the
 * caller's search_path.
 */
static Oid
extension_schema(FunctionCallInfo fcinfo)
{
	return get_func_namespace(fcinfo->flinfo->fn_oid);
}

/* "'a', 'b'": a trigger's arguments, quoted for CREATE TRIGGER */
static void
append_trigger_args(StringInfo buf, int nargs, const char *const *args)
{
	for (int i = 0; i < nargs; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		appendStringInfoString(buf, quote_literal_cstr(args[i]));
	}
}

/*
 * Create (or replace) one trigger, and set when it fires: "ALWAYS", or
 * "REPLICA".  CREATE OR REPLACE TRIGGER resets that to the default (and
 * on the partitions' clones too), so it is set every time.  ENABLE on a
 * partitioned table also sets it on the clones.
 */
static void
create_trigger(Oid relid, const char *name, const char *events,
			   const char *level, Oid nspid, const char *func,
			   int nargs, const char *const *args, const char *fires)
{
	char	   *table = cache_qualified_name(relid);
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "CREATE OR REPLACE TRIGGER %s AFTER %s ON %s FOR EACH %s EXECUTE FUNCTION %s.%s(",
					 quote_identifier(name), events, table, level,
					 quote_identifier(get_namespace_name(nspid)), func);
	append_trigger_args(&sql, nargs, args);
	appendStringInfoChar(&sql, ')');
	cache_run_sql(sql.data);

	cache_run_sql_as_owner(relid,
						   psprintf("ALTER TABLE %s ENABLE %s TRIGGER %s",
									table, fires, quote_identifier(name)));
}

/* Drop the table's own trigger of that name, if it has one. */
static void
drop_own_trigger(Oid relid, const char *name)
{
	if (cache_trigger_ownership(relid, name) == CACHE_TRIGGER_OWN)
		cache_run_sql_as_owner(relid,
							   psprintf("DROP TRIGGER %s ON %s",
										quote_identifier(name),
										cache_qualified_name(relid)));
}

/*
 * cache_attach(tbl regclass, VARIADIC targets text[] DEFAULT '{}')
 *
 * Creates the triggers described at the top of this file, each with the
 * targets it is for, and drops those it no longer needs: attaching again
 * replaces them.  On a partitioned table, also gives every partition its
 * TRUNCATE trigger.
 */
Datum
sql_cache_attach(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {
		TRIGGER_STMT, TRIGGER_REPLICA, TRIGGER_ROW, TRIGGER_TRUNCATE
	};
	Oid			relid = PG_GETARG_OID(0);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	Oid			nspid = extension_schema(fcinfo);
	Relation	rel;
	Datum	   *elems;
	bool	   *nulls;
	int			nargs;
	const char **args;
	const char **prefixes;
	const char **templates;
	int			nprefixes = 0;
	int			ntemplates = 0;
	bool		partitioned;
	bool		foreign;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("targets must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nargs);

	/* like a NULL prefix anywhere else, a NULL target does nothing */
	for (int i = 0; i < nargs; i++)
	{
		if (nulls[i])
			PG_RETURN_NULL();
	}

	rel = open_for_attach(relid);
	partitioned = (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE);
	foreign = (rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE);

	if (nargs == 0)
	{
		/* the documented default: "users" -> "users:" */
		nargs = 1;
		args = palloc(sizeof(char *));
		args[0] = psprintf("%s:", RelationGetRelationName(rel));
	}
	else
	{
		args = palloc(nargs * sizeof(char *));
		for (int i = 0; i < nargs; i++)
			args[i] = TextDatumGetCString(elems[i]);
	}

	/* the same checks the trigger makes, so that it cannot fail later */
	prefixes = palloc(nargs * sizeof(char *));
	templates = palloc(nargs * sizeof(char *));
	for (int i = 0; i < nargs; i++)
	{
		CacheTarget t;

		cache_parse_target(args[i], strlen(args[i]), &t);
		resolve_columns(&t, rel, CurrentMemoryContext);
		if (t.kind == CACHE_TARGET_TEMPLATE)
			templates[ntemplates++] = args[i];
		else
			prefixes[nprefixes++] = args[i];
	}
	check_not_inherited(rel, names, lengthof(names));

	/*
	 * ALTER TABLE refuses a table this session has open; the lock is kept
	 * to the end of the transaction.
	 */
	relation_close(rel, NoLock);

	SPI_connect();
	if (partitioned)
	{
		/* every target per row, so that the partitions' clones have them */
		drop_own_trigger(relid, TRIGGER_STMT);
		drop_own_trigger(relid, TRIGGER_REPLICA);
		create_trigger(relid, TRIGGER_ROW, "INSERT OR UPDATE OR DELETE", "ROW",
					   nspid, "cache_invalidate", nargs, args, "ALWAYS");
	}
	else
	{
		if (nprefixes > 0)
		{
			create_trigger(relid, TRIGGER_STMT, "INSERT OR UPDATE OR DELETE",
						   "STATEMENT", nspid, "cache_invalidate",
						   nprefixes, prefixes, "ALWAYS");
			create_trigger(relid, TRIGGER_REPLICA, "INSERT OR UPDATE OR DELETE",
						   "ROW", nspid, "cache_invalidate",
						   nprefixes, prefixes, "REPLICA");
		}
		else
		{
			drop_own_trigger(relid, TRIGGER_STMT);
			drop_own_trigger(relid, TRIGGER_REPLICA);
		}
		if (ntemplates > 0)
			create_trigger(relid, TRIGGER_ROW, "INSERT OR UPDATE OR DELETE",
						   "ROW", nspid, "cache_invalidate",
						   ntemplates, templates, "ALWAYS");
		else
			drop_own_trigger(relid, TRIGGER_ROW);
	}
	/* foreign tables cannot have TRUNCATE triggers (nor be truncated here) */
	if (!foreign)
		create_trigger(relid, TRIGGER_TRUNCATE, "TRUNCATE", "STATEMENT",
					   nspid, "cache_invalidate", nargs, args, "ALWAYS");
	SPI_finish();

	if (partitioned)
		cache_sync_partition_triggers(relid, nspid);

	PG_RETURN_VOID();
}

/*
 * cache_attach_write_through(tbl regclass, template text,
 *							  ttl integer DEFAULT NULL)
 *
 * Creates cache_write_through, FOR EACH ROW after INSERT, UPDATE and
 * DELETE, and cache_write_through_truncate, FOR EACH STATEMENT after
 * TRUNCATE (so that a truncated table leaves no stored rows behind).  A
 * NULL ttl passes none, so that cache_ext.default_ttl is read when the
 * trigger fires.  Attaching again replaces both.
 *
 * Only the table's owner may: the triggers copy whole rows, every column,
 * into a cache that every role of the database can read.
 */
Datum
sql_cache_attach_write_through(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {TRIGGER_WRITE, TRIGGER_WRITE_TRUNCATE};
	Oid			nspid = extension_schema(fcinfo);
	Oid			relid;
	Relation	rel;
	const char *args[2];
	int			nargs = 1;
	CacheTarget t;
	char		relkind;

	/* like the other functions, a NULL table or template does nothing */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	relid = PG_GETARG_OID(0);
	args[0] = TextDatumGetCString(PG_GETARG_DATUM(1));
	if (!PG_ARGISNULL(2))
	{
		int32		ttl = PG_GETARG_INT32(2);

		if (ttl < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ttl must not be negative"),
					 errdetail("The ttl given is %d.", ttl),
					 errhint("Pass 0 for values that never expire, or NULL for cache_ext.default_ttl.")));
		args[nargs++] = psprintf("%d", ttl);
	}

	rel = open_for_attach(relid);
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER,
					   get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));

	cache_parse_target(args[0], strlen(args[0]), &t);
	if (t.kind != CACHE_TARGET_TEMPLATE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("write-through needs a key template with a {column} placeholder, not the prefix \"%s\"",
						t.text),
				 errhint("For example 'users:by_id:{id}'.")));
	resolve_columns(&t, rel, CurrentMemoryContext);
	check_not_inherited(rel, names, lengthof(names));
	relkind = rel->rd_rel->relkind;
	relation_close(rel, NoLock);	/* see sql_cache_attach() */

	SPI_connect();
	create_trigger(relid, TRIGGER_WRITE, "INSERT OR UPDATE OR DELETE", "ROW",
				   nspid, "cache_write_through", nargs, args, "ALWAYS");
	if (relkind != RELKIND_FOREIGN_TABLE)
		create_trigger(relid, TRIGGER_WRITE_TRUNCATE, "TRUNCATE", "STATEMENT",
					   nspid, "cache_write_through", nargs, args, "ALWAYS");
	SPI_finish();

	if (relkind == RELKIND_PARTITIONED_TABLE)
		cache_sync_partition_triggers(relid, nspid);

	PG_RETURN_VOID();
}

/*
 * cache_detach(tbl regclass)
 *
 * Drops every trigger that cache_attach() and cache_attach_write_through()
 * create (and those of the 0.1 layout, which used the same names), and
 * the TRUNCATE triggers of partitions that no other attached table needs.
 * A table that has none gets a NOTICE rather than an error, so that
 * detaching can be repeated safely (like DROP ... IF EXISTS) while still
 * telling someone who named the wrong table.
 */
Datum
sql_cache_detach(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {
		TRIGGER_STMT, TRIGGER_REPLICA, TRIGGER_ROW, TRIGGER_TRUNCATE,
		TRIGGER_WRITE, TRIGGER_WRITE_TRUNCATE
	};
	Oid			relid = PG_GETARG_OID(0);
	Oid			nspid = extension_schema(fcinfo);
	int			ndropped = 0;
	Oid			origin = InvalidOid;

	/*
	 * No lock here: DROP TRIGGER checks ownership and takes its own lock,
	 * and taking a weaker one first would invite deadlocks between two
	 * sessions upgrading theirs.  Which triggers the table has is read from
	 * the catalogs as they are now.
	 */
	SPI_connect();
	for (int i = 0; i < lengthof(names); i++)
	{
		switch (cache_trigger_ownership(relid, names[i]))
		{
			case CACHE_TRIGGER_OWN:
				cache_run_sql(psprintf("DROP TRIGGER %s ON %s",
								 quote_identifier(names[i]),
								 cache_qualified_name(relid)));
				ndropped++;
				break;
			case CACHE_TRIGGER_CLONED:
				origin = cache_trigger_origin(relid, names[i]);
				break;
			case CACHE_TRIGGER_ABSENT:
				break;
		}
	}
	SPI_finish();

	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE && ndropped > 0)
		cache_sync_partition_triggers(relid, nspid);

	if (ndropped == 0 && OidIsValid(origin))
		ereport(NOTICE,
				(errmsg("table \"%s\" has no cache_ext triggers of its own, skipping",
						get_rel_name(relid)),
				 errdetail("Its cache_ext triggers belong to partitioned table \"%s\"; detach that table instead.",
						   get_rel_name(origin))));
	else if (ndropped == 0)
		ereport(NOTICE,
				(errmsg("table \"%s\" has no cache_ext triggers, skipping",
						get_rel_name(relid))));
	PG_RETURN_VOID();
}
