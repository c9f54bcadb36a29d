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
 * The store keeps the JSON text (cache_get and other clients read it), so
 * a hit has to turn that text into jsonb.  jsonb_in costs ~1 ms for a
 * 110 kB page; a backend-local memo of the last few results (key, the exact
 * text, its jsonb) replaces it with a memcmp when the store returns the same
 * text again.  The store stays the source of truth: every hit still reads
 * it, and a memo entry is used only when its text is byte for byte what the
 * store returned now.
 *
 * The query is one read-only SELECT, run read-only (query_to_json()), with
 * $1, $2, ... bound to the parameters of cache_fetch(key, query, ttl,
 * VARIADIC params).  Every call, hit or miss, first checks it with
 * fetch_check_query() (fetch_check.c): the caller must be allowed to read
 * what the query reads, and when its rows depend on the role (row-level
 * security, column privileges) the cache is neither read nor written.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "cache.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fetch.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

/* locktag_field4 of our advisory locks; pg_advisory_lock uses 1 and 2 */
#define FETCH_LOCK_FIELD4 0xCAC4

/*
 * The memo.  Each entry is one allocation in memo_cxt: the jsonb (first, so
 * it is aligned), then the text, then the key.  Entries whose allocation
 * exceeds MEMO_MAX_ENTRY are not kept; the oldest go when the total would
 * exceed MEMO_MAX_TOTAL or all slots are taken.
 */
#define MEMO_SLOTS		8
#define MEMO_MAX_ENTRY	(4 * 1024 * 1024)
#define MEMO_MAX_TOTAL	(8 * 1024 * 1024)

typedef struct FetchMemo
{
	char	   *chunk;			/* the allocation; NULL when the slot is free */
	Size		size;			/* its size */
	uint64		lastuse;
	Jsonb	   *jsonb;
	const char *text;
	Size		textlen;
	const char *key;
	int			keylen;
} FetchMemo;

static MemoryContext memo_cxt = NULL;
static FetchMemo memo[MEMO_SLOTS];
static Size memo_total = 0;
static uint64 memo_clock = 0;

static FetchMemo *
memo_find(const char *key, int keylen)
{
	for (int i = 0; i < MEMO_SLOTS; i++)
	{
		FetchMemo  *m = &memo[i];

		if (m->chunk && m->keylen == keylen &&
			memcmp(m->key, key, keylen) == 0)
			return m;
	}
	return NULL;
}

static void
memo_drop(FetchMemo *m)
{
	if (m == NULL || m->chunk == NULL)
		return;
	pfree(m->chunk);
	memo_total -= m->size;
	m->chunk = NULL;
}

/*
 * Keep (key, text, jsonb).  Copies everything; on any failure (too big, out
 * of memory) it simply keeps nothing, so it never throws.
 */
static void
memo_put(const char *key, int keylen, const char *text, Size textlen,
		 const Jsonb *jsonb)
{
	Size		jsize = VARSIZE(jsonb);
	Size		size = MAXALIGN(jsize) + textlen + keylen;
	FetchMemo  *slot = NULL;
	char	   *chunk;

	memo_drop(memo_find(key, keylen));
	if (size > MEMO_MAX_ENTRY)
		return;

	if (memo_cxt == NULL)
	{
		memo_cxt = AllocSetContextCreate(TopMemoryContext,
										 "cache_fetch memo",
										 ALLOCSET_SMALL_SIZES);
	}

	/* a free slot, else the least recently used; and room within the total */
	for (;;)
	{
		FetchMemo  *oldest = NULL;

		slot = NULL;
		for (int i = 0; i < MEMO_SLOTS; i++)
		{
			if (memo[i].chunk == NULL)
				slot = &memo[i];
			else if (oldest == NULL || memo[i].lastuse < oldest->lastuse)
				oldest = &memo[i];
		}
		if (slot && memo_total + size <= MEMO_MAX_TOTAL)
			break;
		Assert(oldest != NULL);
		memo_drop(oldest);
	}

	chunk = MemoryContextAllocExtended(memo_cxt, size, MCXT_ALLOC_NO_OOM);
	if (chunk == NULL)
		return;
	memcpy(chunk, jsonb, jsize);
	memcpy(chunk + MAXALIGN(jsize), text, textlen);
	memcpy(chunk + MAXALIGN(jsize) + textlen, key, keylen);

	slot->chunk = chunk;
	slot->size = size;
	slot->lastuse = ++memo_clock;
	slot->jsonb = (Jsonb *) chunk;
	slot->text = chunk + MAXALIGN(jsize);
	slot->textlen = textlen;
	slot->key = chunk + MAXALIGN(jsize) + textlen;
	slot->keylen = keylen;
	memo_total += size;
}

/*
 * The jsonb for the JSON text json (len bytes) that the store holds, or has
 * just been given, for key: a copy of the memo's when the memo holds exactly
 * these bytes, otherwise parsed (and memoized).  The result is allocated in
 * the caller's memory context.
 */
static Datum
json_text_to_jsonb(const char *key, int keylen, const char *json, Size len)
{
	FetchMemo  *m = memo_find(key, keylen);
	Jsonb	   *result;
	char	   *cstr;

	if (m && m->textlen == len && memcmp(m->text, json, len) == 0)
	{
		Size		jsize = VARSIZE(m->jsonb);

		m->lastuse = ++memo_clock;
		result = palloc(jsize);
		memcpy(result, m->jsonb, jsize);
		return JsonbPGetDatum(result);
	}

	/* a stale entry goes first, whatever happens below */
	memo_drop(m);
	cstr = pnstrdup(json, len);
	result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												CStringGetDatum(cstr)));
	pfree(cstr);
	memo_put(key, keylen, json, len, result);
	return JsonbPGetDatum(result);
}

/* the same for a value that cache_get returned */
static Datum
cached_to_jsonb(const char *key, int keylen, text *cached)
{
	text	   *t = pg_detoast_datum_packed(cached);

	return json_text_to_jsonb(key, keylen, VARDATA_ANY(t),
							  VARSIZE_ANY_EXHDR(t));
}

/* while the query runs: say where an error (a write refused) comes from */
static void
query_error_callback(void *arg)
{
	errcontext("query of cache_fetch, which runs read-only: %s",
			   (const char *) arg);
}

/*
 * Run the query and return its rows as a JSON array of objects.
 *
 * It runs read-only: XactReadOnly is set for its execution, as in a READ
 * ONLY transaction, so that everything that writes fails with PostgreSQL's
 * own error (25006), including volatile functions that the query calls,
 * nextval() and DDL run by them, at any nesting depth; fetch_check_query()
 * has already refused what is not one SELECT, with a clearer message.
 * SPI's read_only flag is not the tool for this: it only refuses
 * top-level statements that are not read-only, and it would make the
 * query run on the calling statement's snapshot (SPI's non-read-only mode
 * takes a fresh one, as cache_fetch always did).  A read-only transaction
 * cannot be made read-write inside (check_transaction_read_only()
 * refuses), and the flag is restored however the query ends.  Writes to
 * temporary tables remain possible, as in any read-only transaction: they
 * are private to the session.
 */
static char *
query_to_json(const char *query, int nargs, Oid *argtypes,
			  Datum *values, const char *nulls)
{
	StringInfoData buf;
	TupleDesc	tupdesc;
	int			ret;
	bool		save_read_only = XactReadOnly;
	ErrorContextCallback errcb;

	/* allocated before SPI_connect so that it outlives SPI_finish */
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');

	SPI_connect();
	PG_TRY();
	{
		/*
		 * Pushed inside PG_TRY: PG_END_TRY() restores error_context_stack to
		 * its value at PG_TRY(), which must not be &errcb, or it would
		 * dangle once this function returns.
		 */
		errcb.callback = query_error_callback;
		errcb.arg = (void *) query;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;
		XactReadOnly = true;
		ret = SPI_execute_with_args(query, nargs, argtypes, values, nulls,
									false, 0);
		error_context_stack = errcb.previous;
	}
	PG_FINALLY();
	{
		XactReadOnly = save_read_only;
	}
	PG_END_TRY();
	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s",
			 SPI_result_code_string(ret));
	if (SPI_tuptable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must return rows"),
				 errdetail("The function cache_fetch stores the rows of its query as JSON; \"%s\" returns none.",
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

/*
 * The key locks of single-flight.  They are session locks, so that their
 * end is ours to choose: at the end of cache_fetch() (the statement) in
 * general, since a transaction must never block other callers of a key
 * while it idles; but a single-statement transaction that has written
 * stores its value only after its commit (coherence.c, I6), so there they
 * are released right after that (cache_fetch_release_locks(), from the
 * commit's after-locks phase), and waiters find the value.  An abort
 * releases them too.
 */
#define MAX_HELD_LOCKS 16

static LOCKTAG held[MAX_HELD_LOCKS];
static int	nheld = 0;

static void
fetch_lock_release(const LOCKTAG *tag)
{
	for (int i = 0; i < nheld; i++)
		if (memcmp(&held[i], tag, sizeof(LOCKTAG)) == 0)
		{
			LockRelease(&held[i], ExclusiveLock, true);
			held[i] = held[--nheld];
			return;
		}
}

void
cache_fetch_release_locks(void)
{
	while (nheld > 0)
		LockRelease(&held[--nheld], ExclusiveLock, true);
}

/* Take the key's lock; false if another session had it (we waited). */
static bool
fetch_lock_acquire(const LOCKTAG *tag)
{
	bool		waited = false;

	/* a statement that fetches many keys holds at most this many at once */
	if (nheld == MAX_HELD_LOCKS)
		cache_fetch_release_locks();
	if (LockAcquire(tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		(void) LockAcquire(tag, ExclusiveLock, true, false);
		waited = true;
	}
	held[nheld++] = *tag;
	return !waited;
}

Datum
cache_fetch(const CacheStore *store, const char *key, int keylen,
			const char *query, int ttl)
{
	return cache_fetch_params(store, key, keylen, query, ttl,
							  0, NULL, NULL, NULL);
}

Datum
cache_fetch_params(const CacheStore *store, const char *key, int keylen,
				   const char *query, int ttl,
				   int nargs, Oid *argtypes, Datum *values, const char *nulls)
{
	text	   *cached;
	LOCKTAG		tag;
	uint64		h;
	char	   *json;

	/*
	 * One read-only SELECT, which the caller may run (else the error it
	 * would get); under RLS or column privileges its rows are the caller's
	 * own: run it, and neither read nor store the shared value.
	 */
	if (!fetch_check_query(query, nargs, argtypes))
	{
		json = query_to_json(query, nargs, argtypes, values, nulls);
		return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
	}

	cached = cache_get(store, key, keylen);
	if (cached)
		return cached_to_jsonb(key, keylen, cached);
	memo_drop(memo_find(key, keylen));

	h = hash_bytes_extended((const unsigned char *) key, keylen, store->id);
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 FETCH_LOCK_FIELD4);
	/* shown by the cache_ext_fetch_locks view while we wait or compute */
	cache_fetch_key_note(store->id, h, key, keylen);
	if (!fetch_lock_acquire(&tag))
	{
		/* another session ran the query: use its result */
		cached = cache_get(store, key, keylen);
		if (cached)
		{
			fetch_lock_release(&tag);
			cache_fetch_key_clear();
			return cached_to_jsonb(key, keylen, cached);
		}
	}

	/*
	 * An error releases the key's lock at once: a savepoint or an EXCEPTION
	 * block may catch it, and the transaction go on idling.
	 */
	PG_TRY();
	{
		json = query_to_json(query, nargs, argtypes, values, nulls);
		cache_set(store, key, keylen, json, strlen(json), ttl);
	}
	PG_CATCH();
	{
		fetch_lock_release(&tag);
		cache_fetch_key_clear();
		PG_RE_THROW();
	}
	PG_END_TRY();
	cache_fetch_key_clear();

	/* see above: the lock lasts for the statement, or until the commit */
	if (!TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
		IsTransactionBlock())
		fetch_lock_release(&tag);
	return json_text_to_jsonb(key, keylen, json, strlen(json));
}
