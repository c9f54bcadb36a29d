/*-------------------------------------------------------------------------
 *
 * redis_tracking.c
 *		Redis server-assisted client tracking and the key directory.
 *
 * (Interface only so far: no tracking connection, epoch always 0.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "redis_tracking.h"

uint64
cache_tracking_epoch(void)
{
	return 0;
}

void
cache_tracking_define_gucs(void)
{
}

Size
cache_tracking_shmem_size(void)
{
	return 0;
}

void
cache_tracking_shmem_init(void)
{
}
