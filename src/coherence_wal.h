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

/* _PG_init, while preloading: the resource manager and its settings */
extern void cache_wal_init(void);

#endif							/* COHERENCE_WAL_H */
