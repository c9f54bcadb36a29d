/*-------------------------------------------------------------------------
 *
 * coherence_wal.h
 *		Invalidations written to WAL and replayed on hot standbys and in
 *		crash recovery (coherence_wal.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COHERENCE_WAL_H
#define COHERENCE_WAL_H

#include "cache.h"

/* one invalidation of a committing transaction, for its WAL record */
typedef struct CacheWalOp
{
	CacheBackend store;
	CacheOpKind kind;			/* CACHE_OP_KEY, _PREFIX, _PATTERN or _ALL */
	const char *text;
	int			len;
	int			nslen;			/* text[0..nslen) covers it (its namespace) */
} CacheWalOp;

/* cache_ext.wal_invalidations */
extern bool cache_wal_invalidations;

/* _PG_init, before cache_define_gucs() reserves the prefix */
extern void cache_wal_define_gucs(void);

/* _PG_init, while preloading: the resource manager */
extern void cache_wal_init(void);

/* Will cache_wal_log() write anything?  (Off on a standby.) */
extern bool cache_wal_enabled(void);

/*
 * At PRE_COMMIT: write the transaction's invalidations into one WAL
 * record, before its commit record.
 */
extern void cache_wal_log(int n, const CacheWalOp *ops);

#endif							/* COHERENCE_WAL_H */
