/*-------------------------------------------------------------------------
 *
 * fetch_check.c
 *		What cache_fetch() checks about its query, on a hit as on a miss.
 *
 * The query must be exactly one plain SELECT: several statements, DML,
 * utility commands, a data-modifying WITH and SELECT FOR UPDATE/SHARE are
 * refused before anything runs (fetch.c also runs it in read-only mode, so
 * that functions that write fail too).
 *
 * A hit returns what some other role may have cached, so it must not
 * reveal rows that the caller could not read by running the query itself.
 * The first use of a query text (with its parameter types, under the
 * current search_path) parses, analyzes and rewrites it, and keeps a copy
 * of the relation range-table entries of every level: subqueries, CTEs,
 * views and the tables under them, each with the permissions the executor
 * would check (requiredPerms, selectedCols, checkAsUser).  Each call then
 * checks them for the calling role as the executor would (with
 * ExecCheckRTPerms() for all but plain table-level SELECT), which raises
 * the error that the query would.  The plan is not kept, only what its
 * permission check needs: the per-call work is a hash lookup plus ACL and
 * RLS look-ups in the syscache.
 *
 * When the caller is subject to row-level security on a relation, or may
 * read it only through column privileges, its rows depend on the role:
 * cache_fetch then neither reads nor writes the cache (it runs the query).
 *
 * The entries live in a long-lived context, at most FETCH_CHECK_SLOTS of
 * them (least recently used goes).  A relcache invalidation of a relation
 * that an entry reads (ALTER, DROP, GRANT, ENABLE ROW LEVEL SECURITY, ...)
 * marks it for rebuilding, and so does a different search_path.
 *
 * What is not covered: relations read by functions that the query calls
 * (SQL functions included) are checked when those functions run on a miss,
 * not on a hit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "fetch.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/nodeFuncs.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#define FETCH_CHECK_SLOTS	64
#define FETCH_CHECK_BUCKETS	128		/* a power of 2 */

typedef struct FetchCheck
{
	MemoryContext cxt;			/* holds everything below; NULL: free slot */
	uint32		hash;
	bool		valid;			/* false: rebuild before use */
	uint64		lastuse;
	char	   *query;
	int			querylen;
	int			nargs;
	Oid		   *argtypes;
	OverrideSearchPath *search_path;	/* names resolved under this */
	List	   *rtable;			/* copies of the RTE_RELATION entries */
	int			nrels;
	Oid		   *relids;			/* theirs, for the invalidation callback */
	bool	   *rowsecurity;	/* their relrowsecurity when built */
	bool		any_rowsecurity;
	int			next;			/* next slot in the bucket's chain, or -1 */

	/*
	 * The last role found to read everything with table-level SELECT (so
	 * that the result may be shared), and role_gen then.  Valid while the
	 * entry is (GRANT and REVOKE on a relation invalidate it) and role_gen
	 * has not moved (role memberships and attributes).
	 */
	Oid			shared_user;
	uint64		shared_gen;
} FetchCheck;

static MemoryContext check_cxt = NULL;
static FetchCheck checks[FETCH_CHECK_SLOTS];
static int	buckets[FETCH_CHECK_BUCKETS];	/* first slot of each chain, or -1 */
static uint64 check_clock = 0;
static uint64 role_gen = 1;

static void
check_drop(FetchCheck *c)
{
	if (c->cxt)
	{
		int		   *link = &buckets[c->hash & (FETCH_CHECK_BUCKETS - 1)];
		int			me = c - checks;

		while (*link != me)
			link = &checks[*link].next;
		*link = c->next;
		MemoryContextDelete(c->cxt);
	}
	memset(c, 0, sizeof(FetchCheck));
}

/* pg_authid or pg_auth_members changed: ACL results may differ */
static void
check_role_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	role_gen++;
}

/* ALTER, DROP, ... of a relation that an entry reads: rebuild it */
static void
check_relcache_callback(Datum arg, Oid relid)
{
	for (int i = 0; i < FETCH_CHECK_SLOTS; i++)
	{
		FetchCheck *c = &checks[i];

		if (c->cxt == NULL || !c->valid)
			continue;
		if (!OidIsValid(relid))
		{
			c->valid = false;
			continue;
		}
		for (int j = 0; j < c->nrels; j++)
			if (c->relids[j] == relid)
			{
				c->valid = false;
				break;
			}
	}
}

static void
refuse(int sqlstate, const char *detail)
{
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("query must be a single SELECT statement"),
			 errdetail_internal("%s", detail),
			 errhint("The function cache_fetch caches the rows of one read-only query.")));
}

/* what check_walker() gathers from every level of the query */
typedef struct CheckWalk
{
	List	   *rtable;			/* the RTE_RELATION entries */
	bool		locks;			/* FOR UPDATE/SHARE somewhere */
	bool		modifies;		/* a data-modifying statement somewhere */
} CheckWalk;

static bool
check_walker(Node *node, CheckWalk *w)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
			w->rtable = lappend(w->rtable, rte);
		return false;
	}
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;

		if (q->rowMarks != NIL || q->hasForUpdate)
			w->locks = true;
		if (q->commandType != CMD_SELECT || q->utilityStmt != NULL ||
			q->hasModifyingCTE)
			w->modifies = true;
		return query_tree_walker(q, check_walker, (void *) w,
								 QTW_EXAMINE_RTES_BEFORE);
	}
	return expression_tree_walker(node, check_walker, (void *) w);
}

/*
 * Parse, analyze and rewrite the query as SPI would, refuse what is not one
 * read-only SELECT, and return the relation entries of every level of its
 * rewritten form (views expanded: the view's own entry for the caller, the
 * tables under it as the view's owner, or as the caller for a
 * security_invoker view), allocated in the current memory context.  Errors
 * in the query (a syntax error, an unknown table or column) are raised
 * here as they would be by running it.
 *
 * It does not plan: the planner folds constant expressions, so a query
 * such as "SELECT 1/0" would fail on a hit although it is never run.
 */
static List *
check_build_rtable(const char *query, int nargs, const Oid *argtypes)
{
	List	   *raw;
	RawStmt    *rs;
	List	   *queries;
	Query	   *q;
	CheckWalk	w = {NIL, false, false};

	raw = pg_parse_query(query);
	if (list_length(raw) != 1)
		refuse(ERRCODE_SYNTAX_ERROR,
			   psprintf("It contains %d statements.", list_length(raw)));
	rs = linitial_node(RawStmt, raw);
	if (!IsA(rs->stmt, SelectStmt))
		refuse(ERRCODE_FEATURE_NOT_SUPPORTED,
			   psprintf("It is %s.", CreateCommandName(rs->stmt)));

	queries = pg_analyze_and_rewrite_fixedparams(rs, query, argtypes, nargs,
												 NULL);
	if (list_length(queries) != 1)
		refuse(ERRCODE_FEATURE_NOT_SUPPORTED,
			   "Its rewritten form has several statements.");
	q = linitial_node(Query, queries);
	/* SELECT ... INTO is a CREATE TABLE AS */
	if (q->commandType != CMD_SELECT || q->utilityStmt != NULL)
		refuse(ERRCODE_FEATURE_NOT_SUPPORTED,
			   psprintf("It is %s.", CreateCommandName((Node *) q)));

	(void) check_walker((Node *) q, &w);
	if (w.modifies)
		refuse(ERRCODE_FEATURE_NOT_SUPPORTED,
			   "Its WITH clause modifies data.");
	if (w.locks)
		refuse(ERRCODE_FEATURE_NOT_SUPPORTED,
			   "SELECT FOR UPDATE/SHARE locks rows.");
	return w.rtable;
}

/* The entry for this query and these parameter types, built if need be. */
static FetchCheck *
check_lookup(const char *query, int nargs, const Oid *argtypes)
{
	int			querylen = strlen(query);
	uint32		hash = hash_bytes((const unsigned char *) query, querylen);
	FetchCheck *c = NULL;
	FetchCheck *slot = NULL;
	MemoryContext cxt;
	MemoryContext old;
	List	   *rtable;
	ListCell   *lc;
	int			i;

	if (nargs > 0)
		hash = hash_combine(hash, hash_bytes((const unsigned char *) argtypes,
											 nargs * sizeof(Oid)));
	for (i = check_cxt ? buckets[hash & (FETCH_CHECK_BUCKETS - 1)] : -1;
		 i >= 0; i = checks[i].next)
	{
		FetchCheck *e = &checks[i];

		if (e->hash == hash && e->querylen == querylen &&
			e->nargs == nargs &&
			memcmp(e->query, query, querylen) == 0 &&
			(nargs == 0 || memcmp(e->argtypes, argtypes, nargs * sizeof(Oid)) == 0))
		{
			c = e;
			break;
		}
	}

	/*
	 * A relation dropped or altered since is seen by the relcache callback
	 * when the syscache sees it (both act on the same invalidation
	 * messages), so a valid entry names only relations that exist.
	 */
	if (c && c->valid && OverrideSearchPathMatchesCurrent(c->search_path))
	{
		c->lastuse = ++check_clock;
		return c;
	}

	if (check_cxt == NULL)
	{
		check_cxt = AllocSetContextCreate(TopMemoryContext,
										  "cache_fetch query checks",
										  ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(check_relcache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, check_role_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, check_role_callback,
									  (Datum) 0);
		for (i = 0; i < FETCH_CHECK_BUCKETS; i++)
			buckets[i] = -1;
	}

	/*
	 * Build in a context of its own under the caller's, so that an error
	 * leaves nothing behind; it moves under check_cxt once it is complete.
	 */
	cxt = AllocSetContextCreate(CurrentMemoryContext,
								"cache_fetch query check",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	rtable = check_build_rtable(query, nargs, argtypes);
	MemoryContextSwitchTo(old);

	/* the parse trees were allocated in cxt too: keep only our copies */
	{
		MemoryContext keep = AllocSetContextCreate(CurrentMemoryContext,
												   "cache_fetch query check",
												   ALLOCSET_SMALL_SIZES);

		old = MemoryContextSwitchTo(keep);
		rtable = copyObject(rtable);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		cxt = keep;
	}

	if (c)
		check_drop(c);
	/* a free slot, else the least recently used */
	for (i = 0; i < FETCH_CHECK_SLOTS; i++)
	{
		if (checks[i].cxt == NULL)
		{
			slot = &checks[i];
			break;
		}
		if (slot == NULL || checks[i].lastuse < slot->lastuse)
			slot = &checks[i];
	}
	check_drop(slot);

	old = MemoryContextSwitchTo(cxt);
	slot->query = pnstrdup(query, querylen);
	slot->querylen = querylen;
	slot->nargs = nargs;
	slot->argtypes = palloc(Max(nargs, 1) * sizeof(Oid));
	if (nargs > 0)
		memcpy(slot->argtypes, argtypes, nargs * sizeof(Oid));
	slot->search_path = GetOverrideSearchPath(cxt);
	slot->rtable = rtable;
	slot->nrels = list_length(rtable);
	slot->relids = palloc(Max(slot->nrels, 1) * sizeof(Oid));
	slot->rowsecurity = palloc0(Max(slot->nrels, 1) * sizeof(bool));
	i = 0;
	foreach(lc, rtable)
	{
		Oid			relid = lfirst_node(RangeTblEntry, lc)->relid;
		HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

		if (HeapTupleIsValid(tuple))
		{
			slot->rowsecurity[i] = ((Form_pg_class) GETSTRUCT(tuple))->relrowsecurity;
			slot->any_rowsecurity |= slot->rowsecurity[i];
			ReleaseSysCache(tuple);
		}
		slot->relids[i++] = relid;
	}
	MemoryContextSwitchTo(old);

	MemoryContextSetParent(cxt, check_cxt);
	slot->cxt = cxt;
	slot->hash = hash;
	slot->next = buckets[hash & (FETCH_CHECK_BUCKETS - 1)];
	buckets[hash & (FETCH_CHECK_BUCKETS - 1)] = slot - checks;
	slot->valid = true;
	slot->lastuse = ++check_clock;
	return slot;
}

/*
 * The per-call check.  It gives the result of ExecCheckRTPerms(), in fewer
 * syscache look-ups, and none when the same role calls again with nothing
 * changed that could change the answer: a relation that the query only reads (requiredPerms
 * is ACL_SELECT) and that the role may SELECT as a whole passes, and
 * ExecCheckRTPerms() itself decides the rest (column privileges, or the
 * error).  relrowsecurity is taken from the entry: changing it updates
 * pg_class, whose invalidation rebuilds the entry.
 */
bool
fetch_check_query(const char *query, int nargs, const Oid *argtypes)
{
	FetchCheck *c = check_lookup(query, nargs, argtypes);
	bool		shared = true;
	int			i = 0;
	ListCell   *lc;

	/* a security module checks what the executor would let it check */
	if (ExecutorCheckPerms_hook)
		(void) ExecCheckRTPerms(c->rtable, true);
	else if (c->shared_user == GetUserId() && c->shared_gen == role_gen)
		return true;

	foreach(lc, c->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		bool		rowsecurity = c->rowsecurity[i++];
		Oid			userid;

		/* e.g. a rule's OLD and NEW, which nothing reads */
		if (rte->requiredPerms == 0)
			continue;
		userid = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();

		if (rte->requiredPerms != ACL_SELECT ||
			pg_class_aclcheck(rte->relid, userid, ACL_SELECT) != ACLCHECK_OK)
		{
			/*
			 * The query's own error, or allowed by column privileges only:
			 * then the role's own grants decide what it may read, and its
			 * result is kept to itself.
			 */
			(void) ExecCheckRTPerms(list_make1(rte), true);
			shared = false;
		}

		/* rows filtered by policies for this role */
		if (rowsecurity &&
			check_enable_rls(rte->relid, rte->checkAsUser, true) == RLS_ENABLED)
			shared = false;
	}

	/*
	 * Remember a role that passed on table-level privileges alone, unless
	 * row-level security is on for a relation: whether it applies depends
	 * on more than the catalogs (row_security, the role), so it is checked
	 * on every call.
	 */
	if (shared && !c->any_rowsecurity)
	{
		c->shared_user = GetUserId();
		c->shared_gen = role_gen;
	}
	return shared;
}
