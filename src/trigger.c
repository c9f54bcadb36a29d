/*-------------------------------------------------------------------------
 *
 * trigger.c
 *		Invalidation by triggers, and write-through: the trigger functions
 *		cache_invalidate() and cache_write_through(), and cache_attach(),
 *		cache_attach_write_through() and cache_detach(), which create and
 *		drop the triggers that use them.
 *
 * A trigger's arguments are targets.  A target without "{" is a prefix:
 * every key starting with it is invalidated.  A target with "{column}"
 * placeholders is a key template: for one row, the key is the template
 * with each placeholder replaced by that column's value, printed by its
 * type's output function ("users:by_id:{id}" -> "users:by_id:42").  The
 * column name is taken exactly as written (no case folding, no quotes);
 * a "}" outside a placeholder is an ordinary character.
 *
 * cache_invalidate() applies each target at the level it is built for:
 * FOR EACH STATEMENT it invalidates the prefixes, and on TRUNCATE also
 * each template up to its first placeholder; FOR EACH ROW it deletes the
 * keys built from the templates.  cache_attach() creates one trigger of
 * each kind with the same arguments, so each trigger ignores the targets
 * the other one handles.
 *
 * Targets are parsed and their columns resolved once per statement: the
 * parsed form is kept in the trigger's FmgrInfo, which the executor keeps
 * for the statement (for the whole query, for AFTER triggers).
 *
 * The functions here call the front layer (cache.h), never the SQL
 * functions, so the coherence rules apply to them as to any other call:
 * invalidations act at once and again at commit, and a write-through set
 * made by the writing transaction takes effect when it commits.
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
 * The names of the triggers the attach functions create; cache_detach()
 * drops these.  They start with "cache_" so that \d shows them together,
 * and AFTER ROW triggers fire in name order, so on a table with both an
 * invalidation and a write-through template, the invalidation runs first
 * and the write-through value is stored last.
 */
#define TRIGGER_STMT			"cache_invalidate_stmt"
#define TRIGGER_ROW				"cache_invalidate_row"
#define TRIGGER_WRITE			"cache_write_through"
#define TRIGGER_WRITE_TRUNCATE	"cache_write_through_truncate"

static const char *const trigger_names[] = {
	TRIGGER_STMT, TRIGGER_ROW, TRIGGER_WRITE, TRIGGER_WRITE_TRUNCATE
};

/* One "{column}" of a key template, with the literal text before it. */
typedef struct TemplateColumn
{
	int			litoff;			/* literal text before the placeholder */
	int			litlen;
	char	   *name;
	AttrNumber	attnum;
	FmgrInfo	outfunc;
} TemplateColumn;

/* A trigger argument: a prefix (ncols == 0) or a key template. */
typedef struct CacheTarget
{
	char	   *text;			/* as written, NUL-terminated */
	int			len;
	int			prefixlen;		/* bytes before the first "{"; len for a
								 * prefix */
	int			ncols;
	TemplateColumn *cols;
	int			tailoff;		/* literal text after the last placeholder */
} CacheTarget;

/* A trigger's parsed arguments, kept in fn_extra for the statement. */
typedef struct TriggerTargets
{
	Oid			tgoid;			/* what they were parsed for */
	Oid			relid;
	MemoryContext cxt;			/* holds all of this */
	int			ntargets;
	CacheTarget *targets;
	int			ntemplates;
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
static void
parse_target(const char *str, int len, CacheTarget *t)
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

/*
 * Find the columns a template names in rel, and their output functions
 * (kept in cxt).  Columns are matched by their exact name; dropped and
 * system columns are not found.
 */
static void
resolve_columns(CacheTarget *t, Relation rel, MemoryContext cxt)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);

	for (int c = 0; c < t->ncols; c++)
	{
		TemplateColumn *col = &t->cols[c];
		Form_pg_attribute att = NULL;
		Oid			typoutput;
		bool		typisvarlena;

		for (int a = 0; a < tupdesc->natts; a++)
		{
			Form_pg_attribute candidate = TupleDescAttr(tupdesc, a);

			if (!candidate->attisdropped &&
				strcmp(NameStr(candidate->attname), col->name) == 0)
			{
				att = candidate;
				break;
			}
		}
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

		parse_target(arg, strlen(arg), t);
		resolve_columns(t, rel, cxt);
		if (t->ncols > 0)
			tt->ntemplates++;
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

/* TRUNCATE: every key a prefix or a template could have made goes. */
static void
invalidate_truncated(TriggerTargets *tt)
{
	for (int i = 0; i < tt->ntargets; i++)
	{
		CacheTarget *t = &tt->targets[i];

		cache_invalidate_prefix(t->text, t->prefixlen);
	}
}

/*
 * cache_invalidate(VARIADIC targets) trigger.
 *
 * FOR EACH STATEMENT after INSERT, UPDATE or DELETE: invalidate each
 * prefix; after TRUNCATE: each prefix and each template's fixed start.
 * FOR EACH ROW: delete each template's key for OLD and for NEW (both on
 * UPDATE, so that changing a key column clears the old key and the new
 * one; once if they are the same key).
 */
Datum
sql_cache_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = check_trigger_call(fcinfo, "cache_invalidate");
	TriggerTargets *tt = get_trigger_targets(fcinfo, trigdata, false);
	TriggerEvent event = trigdata->tg_event;

	if (TRIGGER_FIRED_FOR_STATEMENT(event))
	{
		if (TRIGGER_FIRED_BY_TRUNCATE(event))
			invalidate_truncated(tt);
		else
		{
			for (int i = 0; i < tt->ntargets; i++)
			{
				CacheTarget *t = &tt->targets[i];

				if (t->ncols == 0)
					cache_invalidate_prefix_after_write(t->text, t->len);
			}
		}
	}
	else
	{
		StringInfoData oldkey;
		StringInfoData newkey;

		/*
		 * A prefix does nothing here (the statement trigger invalidates it
		 * once rather than once per row), so a row trigger with nothing but
		 * prefixes was made by hand and would silently never invalidate.
		 */
		if (tt->ntemplates == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("trigger \"%s\" on table \"%s\" fires FOR EACH ROW but has no key template",
							trigdata->tg_trigger->tgname,
							RelationGetRelationName(trigdata->tg_relation)),
					 errhint("Prefixes are invalidated by a FOR EACH STATEMENT trigger; cache_attach() creates both kinds.")));

		initStringInfo(&oldkey);
		initStringInfo(&newkey);
		for (int i = 0; i < tt->ntargets; i++)
		{
			CacheTarget *t = &tt->targets[i];
			bool		have_old;
			bool		have_new = false;

			if (t->ncols == 0)
				continue;
			/* tg_trigslot is OLD, or NEW for an INSERT */
			have_old = build_key(t, trigdata->tg_trigslot, &oldkey);
			if (TRIGGER_FIRED_BY_UPDATE(event))
				have_new = build_key(t, trigdata->tg_newslot, &newkey);
			if (have_old)
				cache_delete(oldkey.data, oldkey.len);
			if (have_new &&
				!(have_old && oldkey.len == newkey.len &&
				  memcmp(oldkey.data, newkey.data, oldkey.len) == 0))
				cache_delete(newkey.data, newkey.len);
		}
	}

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
		invalidate_truncated(tt);
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
		cache_delete(oldkey.data, oldkey.len);

	if (have_new)
	{
		text	   *json;
		int			ttl = tt->ttl >= 0 ? tt->ttl : cache_default_ttl;

		json = DatumGetTextPP(DirectFunctionCall1(row_to_json,
												  ExecFetchSlotHeapTupleDatum(newslot)));

		/*
		 * A value that is not stored (too large, store unavailable) must
		 * not leave the previous version of the row behind.
		 */
		if (!cache_set_row(newkey.data, newkey.len,
						   VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json), ttl))
			cache_delete(newkey.data, newkey.len);
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
				 errdetail("cache_ext triggers can only be attached to tables.")));
	return rel;
}

/* schema.table, quoted as needed, for SQL we run */
static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * The schema of the extension's functions, found from the function being
 * called, so that the triggers name the trigger functions whatever the
 * caller's search_path.
 */
static const char *
extension_schema(FunctionCallInfo fcinfo)
{
	return quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
}

static void
run_sql(const char *sql)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc < 0)
		elog(ERROR, "cache_ext: SPI_execute failed (%d): %s", rc, sql);
}

/* Drop a trigger if the table has one of that name. */
static bool
drop_trigger(Oid relid, const char *name)
{
	if (!OidIsValid(get_trigger_oid(relid, name, true)))
		return false;
	run_sql(psprintf("DROP TRIGGER %s ON %s",
					 quote_identifier(name), qualified_name(relid)));
	return true;
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

static void
create_trigger(Relation rel, const char *name, const char *events,
			   const char *level, const char *schema, const char *func,
			   int nargs, const char *const *args)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "CREATE OR REPLACE TRIGGER %s AFTER %s ON %s FOR EACH %s EXECUTE FUNCTION %s.%s(",
					 quote_identifier(name), events,
					 qualified_name(RelationGetRelid(rel)),
					 level, schema, func);
	append_trigger_args(&sql, nargs, args);
	appendStringInfoChar(&sql, ')');
	run_sql(sql.data);
}

/*
 * cache_attach(tbl regclass, VARIADIC targets text[] DEFAULT '{}')
 *
 * Creates cache_invalidate_stmt, FOR EACH STATEMENT (after TRUNCATE only
 * when there is no prefix, as it would do nothing on other writes), and,
 * when there are templates, cache_invalidate_row, FOR EACH ROW after
 * INSERT, UPDATE and DELETE.  Attaching again replaces both.
 */
Datum
sql_cache_attach(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	const char *schema = extension_schema(fcinfo);
	Relation	rel;
	Datum	   *elems;
	bool	   *nulls;
	int			nargs;
	const char **args;
	int			nprefixes = 0;
	int			ntemplates = 0;

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
	for (int i = 0; i < nargs; i++)
	{
		CacheTarget t;

		parse_target(args[i], strlen(args[i]), &t);
		resolve_columns(&t, rel, CurrentMemoryContext);
		if (t.ncols > 0)
			ntemplates++;
		else
			nprefixes++;
	}

	SPI_connect();
	create_trigger(rel, TRIGGER_STMT,
				   nprefixes > 0 ? "INSERT OR UPDATE OR DELETE OR TRUNCATE" : "TRUNCATE",
				   "STATEMENT", schema, "cache_invalidate", nargs, args);
	if (ntemplates > 0)
		create_trigger(rel, TRIGGER_ROW, "INSERT OR UPDATE OR DELETE",
					   "ROW", schema, "cache_invalidate", nargs, args);
	else
		drop_trigger(relid, TRIGGER_ROW);
	SPI_finish();

	relation_close(rel, NoLock);
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
 */
Datum
sql_cache_attach_write_through(PG_FUNCTION_ARGS)
{
	const char *schema = extension_schema(fcinfo);
	Relation	rel;
	const char *args[2];
	int			nargs = 1;
	CacheTarget t;

	/* like the other functions, a NULL table or template does nothing */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	args[0] = TextDatumGetCString(PG_GETARG_DATUM(1));
	if (!PG_ARGISNULL(2))
	{
		int32		ttl = PG_GETARG_INT32(2);

		if (ttl < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ttl must not be negative, got %d", ttl),
					 errhint("Pass 0 for values that never expire, or NULL for cache_ext.default_ttl.")));
		args[nargs++] = psprintf("%d", ttl);
	}

	rel = open_for_attach(PG_GETARG_OID(0));

	parse_target(args[0], strlen(args[0]), &t);
	if (t.ncols == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("write-through needs a key template with a {column} placeholder, not the prefix \"%s\"",
						t.text),
				 errhint("For example 'users:by_id:{id}'.")));
	resolve_columns(&t, rel, CurrentMemoryContext);

	SPI_connect();
	create_trigger(rel, TRIGGER_WRITE, "INSERT OR UPDATE OR DELETE", "ROW",
				   schema, "cache_write_through", nargs, args);
	create_trigger(rel, TRIGGER_WRITE_TRUNCATE, "TRUNCATE", "STATEMENT",
				   schema, "cache_write_through", nargs, args);
	SPI_finish();

	relation_close(rel, NoLock);
	PG_RETURN_VOID();
}

/*
 * cache_detach(tbl regclass)
 *
 * Drops every trigger that cache_attach() and cache_attach_write_through()
 * create.  A table that has none gets a NOTICE rather than an error, so
 * that detaching can be repeated safely (like DROP ... IF EXISTS) while
 * still telling someone who named the wrong table.
 */
Datum
sql_cache_detach(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int			ndropped = 0;

	/*
	 * No lock here: DROP TRIGGER checks ownership and takes its own lock,
	 * and taking a weaker one first would invite deadlocks between two
	 * sessions upgrading theirs.
	 */
	SPI_connect();
	for (int i = 0; i < lengthof(trigger_names); i++)
		ndropped += drop_trigger(relid, trigger_names[i]);
	SPI_finish();

	if (ndropped == 0)
		ereport(NOTICE,
				(errmsg("table \"%s\" has no cache_ext triggers, skipping",
						get_rel_name(relid))));
	PG_RETURN_VOID();
}
