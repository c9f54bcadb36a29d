#!/usr/bin/env bash
#
# test/run.sh ("make test"): cache_ext's whole suite on a throwaway cluster
# and a throwaway Redis, on any Debian 12 machine, as root or with sudo.
#
#   1. install missing packages, build, install the extension
#   2. pg_regress: the REGRESS list of the Makefile, once per store
#      (shmem, then redis through PGOPTIONS='-c cache_ext.backend=redis')
#   3. pg_isolation_regress: test/isolation/specs/*.spec, once per store
#   4. TAP: prove test/t/*.pl, one file at a time, as the postgres user
#   5. scripts: test/scripts/*.sh, each against the throwaway services
#      (as the calling user, from the repo)
#
# Counting: one test per pg_regress case per store, per isolation spec per
# store, per TAP file (a file passes when all its assertions do), per
# script; a step that cannot run at all counts as one failure.  The last
# line is "N passed, N failed" (written to $CE_SUMMARY_FILE instead when
# that is set, for .ci/run).  Exit status: 0 only if nothing failed.
#
# Environment (optional):
#   CE_STORES="shmem redis"   stores to run pg_regress/isolation on
#   CE_REGRESS="basic args"   run only these pg_regress cases
#   CE_ONLY="regress isolation tap scripts"   steps to run
#   CE_TAP="001_restart"      run only these TAP files (names without .pl)
#   CE_SCRIPTS="coherence_stress"  run only these scripts (names without .sh)
#   CE_SKIP_BUILD=1           skip step 1 (packages, build, install)
#   CE_KEEP=1                 keep the temp dir and services for debugging
#   CE_VERBOSE=1              prove -v
set -euo pipefail

# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STORES=${CE_STORES:-shmem redis}
ONLY=${CE_ONLY:-regress isolation tap scripts}
STEP_TIMEOUT=${CE_STEP_TIMEOUT:-600}

PASSED=0
FAILED=0
FAILURES=()
SUMMARY_DONE=0

record() {
	local status=$1 name=$2
	if [ "$status" = pass ]; then
		PASSED=$((PASSED + 1))
	else
		FAILED=$((FAILED + 1))
		FAILURES+=("$name")
	fi
}

print_summary() {
	local line="$PASSED passed, $FAILED failed" f
	SUMMARY_DONE=1
	echo
	echo "============================================================"
	if [ "$FAILED" -gt 0 ]; then
		echo "failed:"
		for f in "${FAILURES[@]}"; do
			echo "  - $f"
		done
	fi
	if [ -n "${CE_SUMMARY_FILE:-}" ]; then
		echo "$line" >"$CE_SUMMARY_FILE"
	else
		echo "$line"
	fi
}

on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$SUMMARY_DONE" != 1 ]; then
		record fail "setup or runner aborted (exit status $rc)"
		print_summary
	fi
	ce_cleanup
	if [ "$FAILED" -gt 0 ] && [ "$rc" -eq 0 ]; then
		rc=1
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wants() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

store_pgoptions() {
	if [ "$1" = shmem ]; then
		echo "-c cache_ext.backend=shmem"
	else
		echo "-c cache_ext.backend=$1"
	fi
}

# Empty the throwaway Redis so that each store run starts clean.
redis_flush() {
	"$CE_REDIS_CLI" -h 127.0.0.1 -p "$CE_REDIS_PORT" flushall >/dev/null
}

# Print the words of "REGRESS = ..." in the Makefile (continuation lines
# joined, "+=" appended), so that the Makefile stays the one list.
regress_list() {
	if [ -n "${CE_REGRESS:-}" ]; then
		echo "$CE_REGRESS"
		return
	fi
	awk '
	{
		line = $0
		while (line ~ /\\$/ && (getline nxt) > 0) {
			sub(/\\$/, " ", line)
			line = line nxt
		}
		if (line ~ /^[ \t]*REGRESS[ \t]*[:+]?=/) {
			append = (line ~ /^[ \t]*REGRESS[ \t]*\+=/)
			sub(/^[^=]*=/, "", line)
			acc = append ? acc " " line : line
		}
	}
	END { print acc }' "$CE_ROOT/Makefile"
}

# Count the "... ok" / "... FAILED" lines of a pg_regress or
# pg_isolation_regress log; $1 = log, $2 = label, $3 = the driver's exit code.
count_regress_log() {
	local log=$1 label=$2 rc=$3 n_ok n_failed name
	n_ok=0
	n_failed=0
	while IFS= read -r line; do
		# PG15: "test basic   ... ok   12 ms", or "     basic ... ok" in a group
		if [[ $line =~ ^(test[[:space:]]+|[[:space:]]+)([^[:space:]]+)[[:space:]]+\.\.\.[[:space:]]+(ok|FAILED|failed) ]]; then
			name=${BASH_REMATCH[2]}
			if [ "${BASH_REMATCH[3]}" = ok ]; then
				record pass "$label $name"
				n_ok=$((n_ok + 1))
			else
				record fail "$label $name"
				n_failed=$((n_failed + 1))
			fi
		fi
	done <"$log"
	if [ "$rc" -ne 0 ] && [ "$n_failed" -eq 0 ]; then
		record fail "$label (the driver exited with status $rc)"
	elif [ "$rc" -eq 0 ] && [ "$n_ok" -eq 0 ]; then
		record fail "$label (ran no test)"
	fi
}

show_diffs() {
	local diffs=$1
	if ce_as_root test -s "$diffs"; then
		echo "---- $diffs (first 400 lines) ----"
		ce_as_root head -n 400 "$diffs"
		echo "---- end of diffs ----"
	fi
}

# run_regress DRIVER LABEL STORE INPUTDIR DBNAME TESTS...
run_regress() {
	local driver=$1 label=$2 store=$3 inputdir=$4 dbname=$5
	shift 5
	local outdir="$CE_TMP/out/$label-$store" rc=0
	ce_as_pg mkdir -p "$outdir"
	[ "$store" != redis ] || redis_flush
	ce_log "$label on the $store store: $*"
	set +e
	ce_as_pg env PGOPTIONS="$(store_pgoptions "$store")" \
		timeout -k 10 "$STEP_TIMEOUT" "$driver" \
		--bindir="$CE_PGBIN" --host="$CE_PGHOST" --port="$CE_PGPORT" --user=postgres \
		--dbname="$dbname" --inputdir="$inputdir" --outputdir="$outdir" \
		"$@" 2>&1 | tee "$CE_LOGDIR/$label-$store.log"
	rc=${PIPESTATUS[0]}
	set -e
	count_regress_log "$CE_LOGDIR/$label-$store.log" "$label/$store" "$rc"
	[ "$rc" -eq 0 ] || show_diffs "$outdir/regression.diffs"
}

step_regress() {
	local tests store
	read -r -a tests <<<"$(regress_list)"
	if [ "${#tests[@]}" -eq 0 ]; then
		record fail "pg_regress (no REGRESS list found in the Makefile)"
		return
	fi
	for store in $STORES; do
		run_regress "$CE_PG_REGRESS" regress "$store" "$CE_TMP/src" \
			"cache_regress_$store" "${tests[@]}"
	done
}

step_isolation() {
	local specs=() f store
	for f in "$CE_TMP/src/test/isolation/specs/"*.spec; do
		[ -e "$f" ] || continue
		specs+=("$(basename "$f" .spec)")
	done
	if [ "${#specs[@]}" -eq 0 ]; then
		ce_log "isolation: no spec in test/isolation/specs, skipped"
		return
	fi
	for store in $STORES; do
		run_regress "$CE_PG_ISOLATION_REGRESS" isolation "$store" \
			"$CE_TMP/src/test/isolation" "cache_isolation_$store" "${specs[@]}"
	done
}

step_tap() {
	local f name dir rc prove_opts=()
	[ "${CE_VERBOSE:-0}" = 1 ] && prove_opts+=(-v)
	for f in "$CE_TMP/src/test/t/"*.pl; do
		[ -e "$f" ] || continue
		name=$(basename "$f" .pl)
		if [ -n "${CE_TAP:-}" ] && [[ " $CE_TAP " != *" $name "* ]]; then
			continue
		fi
		dir="$CE_TMP/tap/$name"
		ce_as_pg mkdir -p "$dir"
		ce_log "TAP $name"
		set +e
		# shellcheck disable=SC2016  # $1 and $@ are the inner shell's
		ce_as_pg env PATH="$CE_PGBIN:/usr/local/bin:/usr/bin:/bin" \
			PG_REGRESS="$CE_PG_REGRESS" TESTDIR="$dir" PGOPTIONS= \
			REDIS_SERVER="$CE_REDIS_SERVER" REDIS_CLI="$CE_REDIS_CLI" \
			REDIS_PORT="${CE_REDIS_PORT:-}" \
			PG_TEST_TIMEOUT_DEFAULT="${PG_TEST_TIMEOUT_DEFAULT:-120}" \
			sh -c 'cd "$1" && shift && exec "$@"' sh "$dir" \
			timeout -k 10 "$STEP_TIMEOUT" \
			prove "${prove_opts[@]}" -I "$CE_TAP_PERL_DIR" -I "$CE_TMP/src/test/t" "$f" 2>&1
		rc=$?
		set -e
		if [ "$rc" -eq 0 ]; then
			record pass "tap $name"
		else
			record fail "tap $name"
			local log="$dir/tmp_check/log/regress_log_$name"
			if ce_as_root test -s "$log"; then
				echo "---- last 80 lines of regress_log_$name ----"
				ce_as_root tail -n 80 "$log"
				echo "---- end ----"
			fi
		fi
	done
}

# Scripts run as the user running this (root, or a sudoer: they may install
# what they need), from the repo itself, against the throwaway services.
step_scripts() {
	local f name rc
	for f in "$CE_ROOT/test/scripts/"*.sh; do
		[ -e "$f" ] || continue
		name=$(basename "$f" .sh)
		if [ -n "${CE_SCRIPTS:-}" ] && [[ " $CE_SCRIPTS " != *" $name "* ]]; then
			continue
		fi
		ce_log "script $name"
		PGOPTIONS="-c client_min_messages=warning" \
			ce_psql -d postgres -c "DROP DATABASE IF EXISTS cache_script" \
			-c "CREATE DATABASE cache_script"
		[ -z "$CE_REDIS_PORT" ] || redis_flush
		set +e
		(cd "$CE_ROOT" && env PATH="$CE_PGBIN:$PATH" PGOPTIONS= \
			PGHOST="$CE_PGHOST" PGPORT="$CE_PGPORT" PGUSER=postgres \
			PGDATABASE=cache_script PGBIN="$CE_PGBIN" \
			REDIS_HOST=127.0.0.1 REDIS_PORT="${CE_REDIS_PORT:-}" \
			REDIS_URL="redis://127.0.0.1:${CE_REDIS_PORT:-6379}/0" \
			REDIS_SOCKET="$CE_TMP/redis.sock" \
			REDIS_SERVER="$CE_REDIS_SERVER" REDIS_CLI="$CE_REDIS_CLI" \
			timeout -k 10 "$STEP_TIMEOUT" bash "$f" 2>&1 </dev/null)
		rc=$?
		set -e
		if [ "$rc" -eq 0 ]; then
			record pass "script $name"
		else
			record fail "script $name (exit status $rc)"
		fi
	done
}

# ---------------------------------------------------------------------------

SECONDS=0
if [ "${CE_SKIP_BUILD:-0}" != 1 ]; then
	ce_deps
	ce_build_install
fi

ce_make_tmp
# Makefile and control file: test/t/160_installcheck runs "make installcheck"
ce_copy_to_tmp sql expected test Makefile cache_ext.control
ce_as_pg mkdir -p "$CE_TMP/out"
ce_start_services --redis

wants regress && step_regress
wants isolation && step_isolation
wants tap && step_tap
wants scripts && step_scripts

echo
echo "done in ${SECONDS}s"
print_summary
[ "$FAILED" -eq 0 ]
