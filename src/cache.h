/*-------------------------------------------------------------------------
 *
 * cache.h
 *		The front layer's operations, called by the SQL functions with
 *		arguments already checked.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHE_H
#define CACHE_H

#include "cache_ext.h"

/*
 * Explicit calls: on the store given (the SQL functions pass the session's,
 * cache_current_store()).
 */
extern text *cache_get(const CacheStore *store, const char *key, int keylen);
extern void cache_get_many(const CacheStore *store, int nkeys,
						   const char *const *keys, const int *keylens,
						   text **values);
extern bool cache_set(const CacheStore *store, const char *key, int keylen,
					  const char *val, Size vallen, int ttl);
extern bool cache_delete(const CacheStore *store, const char *key, int keylen);
extern int64 cache_invalidate_prefix(const CacheStore *store,
									 const char *prefix, int len);
extern int64 cache_invalidate_pattern(const CacheStore *store,
									  const char *pattern, int len);
extern int64 cache_flush(const CacheStore *store);
extern int32 cache_ttl(const CacheStore *store, const char *key, int keylen,
					   bool *found);

/* cache-aside in one call (fetch.c); returns a jsonb Datum */
extern Datum cache_fetch(const CacheStore *store, const char *key, int keylen,
						 const char *query, int ttl);
/* release cache_fetch's key locks: after the commit's sets, or at abort */
extern void cache_fetch_release_locks(void);

/*
 * By triggers: on every store a write invalidates (cache_written_stores()),
 * whatever the session's cache_ext.backend.  nslen is the length of the
 * namespace the key belongs to (a template's text before its first
 * placeholder): a transaction with too many keys to remember has them
 * widened to it, never further.  spares_row_images: an invalidation of a
 * prefix by an INSERT, UPDATE or DELETE leaves the row images that
 * write-through stored in the same transaction (see deciding_op() in
 * coherence.c); TRUNCATE's does not.
 */
extern void cache_written_key(const char *key, int keylen, int nslen);
extern void cache_written_prefix(const char *prefix, int len,
								 bool spares_row_images);
/* write-through: store a row's image, or remove the key if not stored */
extern void cache_written_row(const char *key, int keylen, int nslen,
							  const char *val, Size vallen, int ttl);

/* store now, counting and logging; the coherence layer's way in */
extern bool cache_store_set(const CacheStore *store, const char *key,
							int keylen, const char *val, Size vallen, int ttl);

/* ---- coherence.c ---- */

typedef enum CacheOpKind
{
	CACHE_OP_SET,
	CACHE_OP_KEY,
	CACHE_OP_PREFIX,
	CACHE_OP_PATTERN,
	CACHE_OP_ALL
} CacheOpKind;

/* store_shmem.c: an invalidation of database dbid's namespace (WAL replay) */
extern int64 cache_shmem_invalidate_in(Oid dbid, CacheOpKind kind,
									   const char *arg, int len);

typedef enum CacheSetResult
{
	CACHE_SET_STORED,
	CACHE_SET_PENDING,			/* applied at commit */
	CACHE_SET_REFUSED,			/* possibly stale */
	CACHE_SET_TOO_MANY			/* past the transaction's bound on pending sets */
} CacheSetResult;

typedef enum CachePending
{
	CACHE_PENDING_NONE,			/* the store decides */
	CACHE_PENDING_VALUE,		/* a value set by this transaction */
	CACHE_PENDING_GONE			/* invalidated by this writing transaction */
} CachePending;

extern void cache_coherence_init(void);
extern Size cache_coherence_shmem_size(void);
extern void cache_coherence_shmem_init(void);

extern CachePending cache_pending_lookup(const CacheStore *store,
										 const char *key, int keylen,
										 text **value, int *ttl);
extern void cache_note_miss(const CacheStore *store, const char *key,
							int keylen);
/* flags of cache_coherent_invalidate() */
#define CACHE_INV_BY_WRITE			0x01	/* a trigger's, for a write */
#define CACHE_INV_SPARES_ROW_IMAGES	0x02	/* see deciding_op() */

extern int64 cache_coherent_invalidate(const CacheStore *store,
									   CacheOpKind kind, const char *arg,
									   int len, int nslen, int flags);
extern CacheSetResult cache_coherent_set(const CacheStore *store,
										 const char *key, int keylen,
										 const char *val, Size vallen,
										 int ttl, bool row_image);
extern bool cache_in_commit(void);

#endif							/* CACHE_H */
