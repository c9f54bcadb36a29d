/*-------------------------------------------------------------------------
 *
 * cache_ext.c
 *		Module entry point: settings and shared-memory hooks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "cache.h"
#include "coherence_wal.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "invalq.h"
#include "miscadmin.h"
#include "near_cache.h"
#include "redis_tracking.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

PG_MODULE_MAGIC;

bool		cache_preloaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

void		_PG_init(void);

static void
cache_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	cache_shmem_request();
	RequestAddinShmemSpace(cache_stats_shmem_size());
	RequestAddinShmemSpace(cache_coherence_shmem_size());
	RequestAddinShmemSpace(cache_queue_shmem_size());
	RequestAddinShmemSpace(cache_tracking_shmem_size());
	RequestAddinShmemSpace(cache_near_shmem_size());
}

static void
cache_shmem_startup_hook(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cache_shmem_startup();
	cache_stats_shmem_init();
	cache_coherence_shmem_init();
	cache_queue_shmem_init();
	cache_tracking_shmem_init();
	cache_near_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * DROP DATABASE takes that database's entries with it, once it commits: the
 * drop hook runs before the drop has waited out the database's sessions
 * (which could still store keys) and before it can fail.
 */
static Oid	dropped_database = InvalidOid;

static void
cache_object_access_hook(ObjectAccessType access, Oid classId, Oid objectId,
						 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == DatabaseRelationId)
		dropped_database = objectId;
}

static void
cache_drop_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && OidIsValid(dropped_database))
		cache_shmem_forget_database(dropped_database);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		dropped_database = InvalidOid;
}

void
_PG_init(void)
{
	/* before cache_define_gucs() reserves the prefix */
	cache_queue_define_gucs();
	cache_tracking_define_gucs();
	cache_near_define_gucs();
	cache_wal_define_gucs();
	cache_define_gucs();
	cache_coherence_init();

	/*
	 * Loaded by CREATE EXTENSION or a first call rather than preloaded: the
	 * Redis store works, the shared-memory store reports what to add.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	cache_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cache_shmem_request_hook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cache_shmem_startup_hook;
	prev_object_access_hook = object_access_hook;
	object_access_hook = cache_object_access_hook;
	RegisterXactCallback(cache_drop_xact_callback, NULL);
	cache_wal_init();
	cache_worker_register();
}
