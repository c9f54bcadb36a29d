#!/usr/bin/env bash
#
# examples/demo.sh ("make demo"): cache_ext's main job in one short report.
# Installs what is missing, builds and installs the extension, starts a
# throwaway cluster (postgres OS user, temp dir, free loopback port,
# shared_preload_libraries = 'cache_ext'), runs examples/demo.sql on the
# shared-memory store, and removes everything on exit.
set -euo pipefail

# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"

ce_install_cleanup_trap
if [ "${CE_SKIP_BUILD:-0}" != 1 ]; then
	ce_deps
	ce_build_install
fi
ce_make_tmp
ce_copy_to_tmp examples/demo.sql
# shellcheck disable=SC2119  # no option: no Redis, the shmem store
ce_start_services
ce_psql -d postgres -c 'CREATE DATABASE demo'
echo
PGOPTIONS='-c cache_ext.backend=shmem' ce_psql -d demo -f "$CE_TMP/src/examples/demo.sql"
