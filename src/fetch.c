/*-------------------------------------------------------------------------
 *
 * fetch.c
 *		cache_fetch(): cache-aside in one call.
 *
 * On a miss the query runs through SPI with the caller's privileges and its
 * rows become a JSON array of objects.  Concurrent misses on one key run
 * the query once: the first takes a heavyweight lock on the key (an
 * advisory lock tag of our own, so it is interruptible, deadlock-checked
 * and bounded by lock_timeout and statement_timeout) and the others wait on
 * it, then find the value in the cache.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "cache.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

/* locktag_field4 of our advisory locks; pg_advisory_lock uses 1 and 2 */
#define FETCH_LOCK_FIELD4 0xCAC4

static Datum
json_text_to_jsonb(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/* Run the query and return its rows as a JSON array of objects. */
static char *
query_to_json(const char *query)
{
	StringInfoData buf;
	TupleDesc	tupdesc;
	int			ret;

	/* allocated before SPI_connect so that it outlives SPI_finish */
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');

	SPI_connect();
	ret = SPI_execute(query, false, 0);
	if (ret < 0)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_tuptable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must return rows"),
				 errdetail("cache_fetch stores the rows of its query as JSON; \"%s\" returns none.",
						   query)));

	tupdesc = BlessTupleDesc(SPI_tuptable->tupdesc);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		row = heap_copy_tuple_as_datum(SPI_tuptable->vals[i], tupdesc);
		text	   *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));

		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendBinaryStringInfo(&buf, VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));
	}
	SPI_finish();

	appendStringInfoChar(&buf, ']');
	return buf.data;
}

Datum
cache_fetch(const char *key, int keylen, const char *query, int ttl)
{
	text	   *cached;
	LOCKTAG		tag;
	uint64		h;
	char	   *json;

	cached = cache_get(key, keylen);
	if (cached)
		return json_text_to_jsonb(text_to_cstring(cached));

	h = hash_bytes_extended((const unsigned char *) key, keylen, cache_backend);
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 FETCH_LOCK_FIELD4);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		/* another session is running the query: wait, then use its result */
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		cached = cache_get(key, keylen);
		if (cached)
		{
			LockRelease(&tag, ExclusiveLock, false);
			return json_text_to_jsonb(text_to_cstring(cached));
		}
	}

	json = query_to_json(query);
	cache_set(key, keylen, json, strlen(json), ttl);

	/*
	 * A transaction that has written stores at commit: keep waiters waiting
	 * until then (the lock goes at transaction end) so that they find it.
	 */
	if (!TransactionIdIsValid(GetTopTransactionIdIfAny()))
		LockRelease(&tag, ExclusiveLock, false);
	return json_text_to_jsonb(json);
}
