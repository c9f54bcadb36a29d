/*-------------------------------------------------------------------------
 *
 * functions.c
 *		The SQL-callable functions.  They check arguments as the contract
 *		says and call the front layer (cache.c); nothing here knows which
 *		store is in use.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cache.h"
#include "fetch.h"
#include "invalq.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(sql_cache_get);
PG_FUNCTION_INFO_V1(sql_cache_get_many);
PG_FUNCTION_INFO_V1(sql_cache_set);
PG_FUNCTION_INFO_V1(sql_cache_set_jsonb);
PG_FUNCTION_INFO_V1(sql_cache_delete);
PG_FUNCTION_INFO_V1(sql_cache_invalidate_prefix);
PG_FUNCTION_INFO_V1(sql_cache_invalidate_pattern);
PG_FUNCTION_INFO_V1(sql_cache_ttl);
PG_FUNCTION_INFO_V1(sql_cache_flush);
PG_FUNCTION_INFO_V1(sql_cache_stats);
PG_FUNCTION_INFO_V1(sql_cache_reset_stats);
PG_FUNCTION_INFO_V1(sql_cache_fetch);

/* ---- argument checks ---- */

/* A key or prefix: 1 to CACHE_MAX_KEY_LEN bytes. */
static void
check_key(const char *argname, int len)
{
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));
	if (len > CACHE_MAX_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s must be at most %d bytes long, not %d",
						argname, CACHE_MAX_KEY_LEN, len)));
}

/* The TTL argument: NULL means cache_ext.default_ttl, 0 never expires. */
static int
ttl_arg(FunctionCallInfo fcinfo, int argno)
{
	int32		ttl;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return cache_default_ttl;
	ttl = PG_GETARG_INT32(argno);
	if (ttl < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must not be negative"),
				 errdetail("The ttl given is %d.", ttl),
				 errhint("Pass 0 for a value that never expires, or NULL for cache_ext.default_ttl.")));
	return ttl;
}

#define KEY_ARG(n, name, ptr, len) \
	do { \
		text	   *t_ = PG_GETARG_TEXT_PP(n); \
		(ptr) = VARDATA_ANY(t_); \
		(len) = VARSIZE_ANY_EXHDR(t_); \
		check_key((name), (len)); \
	} while (0)

/*
 * What may empty a whole namespace needs what cache_flush() needs: EXECUTE
 * on it, which is not granted to PUBLIC.  It is looked up in the schema of
 * the function being called, so that it is the extension's own.
 */
static void
check_may_flush(FunctionCallInfo fcinfo, const char *doing)
{
	static Oid	flush_oid = InvalidOid;
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);

	if (!OidIsValid(flush_oid) || get_func_namespace(flush_oid) != nsp)
		flush_oid = LookupFuncName(list_make2(makeString(get_namespace_name(nsp)),
											  makeString("cache_flush")),
								   0, NULL, false);
	if (pg_proc_aclcheck(flush_oid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", doing),
				 errdetail("It can empty the whole namespace, which needs the privilege to execute cache_flush()."),
				 errhint("Start the pattern with a literal part, or have a superuser grant EXECUTE on cache_flush().")));
}

/* ---- functions ---- */

Datum
sql_cache_get(PG_FUNCTION_ARGS)
{
	const char *key;
	int			keylen;
	text	   *value;

	KEY_ARG(0, "key", key, keylen);
	value = cache_get(cache_current_store(), key, keylen);
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(value);
}

Datum
sql_cache_get_many(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			nkeys = 0;
	const char **keys;
	int		   *keylens;
	text	  **values;

	InitMaterializedSRF(fcinfo, 0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("keys must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);

	keys = palloc(Max(n, 1) * sizeof(char *));
	keylens = palloc(Max(n, 1) * sizeof(int));
	values = palloc(Max(n, 1) * sizeof(text *));
	for (int i = 0; i < n; i++)
	{
		text	   *t;

		/* a NULL key has no value, like cache_get(NULL) */
		if (nulls[i])
			continue;
		t = DatumGetTextPP(elems[i]);
		keys[nkeys] = VARDATA_ANY(t);
		keylens[nkeys] = VARSIZE_ANY_EXHDR(t);
		check_key("key", keylens[nkeys]);
		nkeys++;
	}
	if (nkeys > 0)
		cache_get_many(cache_current_store(), nkeys, keys, keylens, values);

	for (int i = 0; i < nkeys; i++)
	{
		Datum		row[2];
		bool		rownulls[2] = {false, false};

		if (values[i] == NULL)
			continue;
		row[0] = PointerGetDatum(cstring_to_text_with_len(keys[i], keylens[i]));
		row[1] = PointerGetDatum(values[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	return (Datum) 0;
}

/* cache_set for text and jsonb: NULL key or value stores nothing */
static Datum
set_common(FunctionCallInfo fcinfo, const char *val, Size vallen)
{
	const char *key;
	int			keylen;
	int			ttl;

	KEY_ARG(0, "key", key, keylen);
	ttl = ttl_arg(fcinfo, 2);
	PG_RETURN_BOOL(cache_set(cache_current_store(), key, keylen, val, vallen, ttl));
}

Datum
sql_cache_set(PG_FUNCTION_ARGS)
{
	text	   *value;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	value = PG_GETARG_TEXT_PP(1);
	return set_common(fcinfo, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
}

Datum
sql_cache_set_jsonb(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb;
	char	   *json;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	jb = PG_GETARG_JSONB_P(1);
	json = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	return set_common(fcinfo, json, strlen(json));
}

Datum
sql_cache_delete(PG_FUNCTION_ARGS)
{
	const char *key;
	int			keylen;

	KEY_ARG(0, "key", key, keylen);
	PG_RETURN_BOOL(cache_delete(cache_current_store(), key, keylen));
}

Datum
sql_cache_invalidate_prefix(PG_FUNCTION_ARGS)
{
	const char *prefix;
	int			len;

	KEY_ARG(0, "prefix", prefix, len);
	PG_RETURN_INT64(cache_invalidate_prefix(cache_current_store(), prefix, len));
}

Datum
sql_cache_invalidate_pattern(PG_FUNCTION_ARGS)
{
	const char *pattern;
	int			len;

	KEY_ARG(0, "pattern", pattern, len);
	if (!cache_glob_valid(pattern, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("pattern \"%.*s\" is not a valid glob pattern", len, pattern),
				 errdetail("A \"[\" needs a closing \"]\" and a \"\\\" needs a character after it.")));
	if (pattern[0] == '*' || pattern[0] == '?' || pattern[0] == '[')
		check_may_flush(fcinfo, "invalidate a pattern that starts with a wildcard");
	PG_RETURN_INT64(cache_invalidate_pattern(cache_current_store(), pattern, len));
}

Datum
sql_cache_ttl(PG_FUNCTION_ARGS)
{
	const char *key;
	int			keylen;
	bool		found;
	int32		ttl;

	KEY_ARG(0, "key", key, keylen);
	ttl = cache_ttl(cache_current_store(), key, keylen, &found);
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_INT32(ttl);
}

Datum
sql_cache_flush(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(cache_flush(cache_current_store()));
}

Datum
sql_cache_stats(PG_FUNCTION_ARGS)
{
	const CacheStore *store = cache_current_store();
	TupleDesc	tupdesc;
	Datum		values[15];
	bool		nulls[15] = {0};
	int64		counters[CACHE_NUM_COUNTERS];
	CacheStoreSize size;
	int64		lookups;
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	store->size(&size);
	cache_stat_read(store->id, counters);

	values[i++] = CStringGetTextDatum(store->name);
	/* the counters of the contract; the others are the view's */
	for (int c = 0; c < CACHE_NUM_CONTRACT_COUNTERS; c++)
		values[i++] = Int64GetDatum(counters[c]);
	/* a store that could not tell reports a negative size: show NULL */
	nulls[i] = size.entries < 0;
	values[i++] = Int64GetDatum(size.entries);
	nulls[i] = size.bytes_used < 0;
	values[i++] = Int64GetDatum(size.bytes_used);
	nulls[i] = size.bytes_max < 0;
	values[i++] = Int64GetDatum(size.bytes_max);
	lookups = counters[CACHE_STAT_HITS] + counters[CACHE_STAT_MISSES];
	values[i++] = Float8GetDatum(lookups > 0 ?
								 (double) counters[CACHE_STAT_HITS] / lookups : 0.0);
	/* 0.2: Redis invalidations waiting and delivered, whatever the backend */
	if (tupdesc->natts > i)
	{
		values[i++] = Int64GetDatum(cache_queue_length());
		values[i++] = Int64GetDatum(cache_queue_delivered());
	}
	Assert(i == tupdesc->natts);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
sql_cache_reset_stats(PG_FUNCTION_ARGS)
{
	cache_stat_reset();
	PG_RETURN_VOID();
}

/* cache_fetch's query argument: not empty */
static char *
fetch_query_arg(FunctionCallInfo fcinfo)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (query[strspn(query, " \t\r\n;")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must not be empty")));
	return query;
}

Datum
sql_cache_fetch(PG_FUNCTION_ARGS)
{
	const char *key;
	int			keylen;
	char	   *query;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	KEY_ARG(0, "key", key, keylen);
	query = fetch_query_arg(fcinfo);
	PG_RETURN_DATUM(cache_fetch(cache_current_store(), key, keylen, query, ttl_arg(fcinfo, 2)));
}

/*
 * cache_fetch(key, query, ttl, VARIADIC params "any"): $1, $2, ... are the
 * arguments after ttl, with their own types (an untyped literal is text),
 * or the elements of an array passed with VARIADIC.  NULLs bind as NULL.
 */
PG_FUNCTION_INFO_V1(sql_cache_fetch_params);

Datum
sql_cache_fetch_params(PG_FUNCTION_ARGS)
{
	const char *key;
	int			keylen;
	char	   *query;
	int			nargs;
	Oid		   *argtypes;
	Datum	   *values;
	char	   *nulls;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	KEY_ARG(0, "key", key, keylen);
	query = fetch_query_arg(fcinfo);

	if (get_fn_expr_variadic(fcinfo->flinfo))
	{
		Oid			arrtype = get_fn_expr_argtype(fcinfo->flinfo, 3);
		Oid			elemtype = OidIsValid(arrtype) ? get_base_element_type(arrtype) : InvalidOid;
		Datum	   *elems = NULL;
		bool	   *elemnulls = NULL;

		if (!OidIsValid(elemtype))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("params passed with VARIADIC must be an array")));
		nargs = 0;
		if (!PG_ARGISNULL(3))
		{
			ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(3);
			int16		typlen;
			bool		typbyval;
			char		typalign;

			get_typlenbyvalalign(ARR_ELEMTYPE(arr), &typlen, &typbyval, &typalign);
			deconstruct_array(arr, ARR_ELEMTYPE(arr), typlen, typbyval, typalign,
							  &elems, &elemnulls, &nargs);
		}
		argtypes = palloc(Max(nargs, 1) * sizeof(Oid));
		values = palloc(Max(nargs, 1) * sizeof(Datum));
		nulls = palloc(Max(nargs, 1));
		for (int i = 0; i < nargs; i++)
		{
			argtypes[i] = elemtype;
			values[i] = elems[i];
			nulls[i] = elemnulls[i] ? 'n' : ' ';
		}
	}
	else
	{
		nargs = PG_NARGS() - 3;
		argtypes = palloc(Max(nargs, 1) * sizeof(Oid));
		values = palloc(Max(nargs, 1) * sizeof(Datum));
		nulls = palloc(Max(nargs, 1));
		for (int i = 0; i < nargs; i++)
		{
			Oid			type = get_fn_expr_argtype(fcinfo->flinfo, 3 + i);
			bool		isnull = PG_ARGISNULL(3 + i);

			if (!OidIsValid(type))
				ereport(ERROR,
						(errcode(ERRCODE_INDETERMINATE_DATATYPE),
						 errmsg("could not determine the data type of params argument %d", i + 1)));
			values[i] = isnull ? (Datum) 0 : PG_GETARG_DATUM(3 + i);
			/* an untyped literal ('abc', NULL) arrives as a C string */
			if (type == UNKNOWNOID)
			{
				type = TEXTOID;
				if (!isnull)
					values[i] = CStringGetTextDatum(DatumGetCString(values[i]));
			}
			argtypes[i] = type;
			nulls[i] = isnull ? 'n' : ' ';
		}
	}

	PG_RETURN_DATUM(cache_fetch_params(cache_current_store(), key, keylen, query,
									   ttl_arg(fcinfo, 2),
									   nargs, argtypes, values, nulls));
}
