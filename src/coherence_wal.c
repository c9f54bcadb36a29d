/*-------------------------------------------------------------------------
 *
 * coherence_wal.c
 *		Invalidations in WAL, for hot standbys and crash recovery.
 *
 * (Interface only so far: nothing is logged.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "coherence_wal.h"

void
cache_wal_init(void)
{
}
