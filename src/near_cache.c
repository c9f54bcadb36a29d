/*-------------------------------------------------------------------------
 *
 * near_cache.c
 *		A coherent near-cache of Redis values in shared memory.
 *
 * (Interface only so far: nothing is kept.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "near_cache.h"

void
cache_near_invalidate_key(const char *rkey, size_t len)
{
}

void
cache_near_invalidate_all(void)
{
}

void
cache_near_define_gucs(void)
{
}

Size
cache_near_shmem_size(void)
{
	return 0;
}

void
cache_near_shmem_init(void)
{
}
