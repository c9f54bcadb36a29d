# shellcheck shell=bash
#
# Sourced by run.sh and test/scripts/fastapi_e2e.sh: fastapi_python sets PY
# to a Python that imports what the example needs (requirements.txt).
#
# In order: $PYTHON if set (a venv's python, say); else python3 from PATH;
# if that one lacks the packages, the Debian packages are installed (when
# missing) and python3 from PATH is tried again; if PATH's python3 is another
# interpreter (pyenv, a venv without the packages), Debian's own python3,
# which the Debian packages are for.

FASTAPI_DEB_PACKAGES=(python3-fastapi python3-uvicorn python3-sqlalchemy python3-asyncpg python3-redis python3-httpx)
FASTAPI_IMPORTS='import fastapi, uvicorn, sqlalchemy, asyncpg, redis, httpx'

fastapi_python() {
	local here candidate
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	if [ -n "${PYTHON:-}" ]; then
		"$PYTHON" -c "$FASTAPI_IMPORTS" ||
			{ echo "error: PYTHON=$PYTHON cannot import the packages of $here/requirements.txt" >&2; return 1; }
		PY=$PYTHON
		return 0
	fi
	if ! python3 -c "$FASTAPI_IMPORTS" 2>/dev/null &&
		! /usr/bin/python3 -c "$FASTAPI_IMPORTS" 2>/dev/null; then
		# in a subshell: lib.sh resets CE_TMP and friends
		# shellcheck source=../../test/lib.sh
		(. "$here/../../test/lib.sh" && ce_install_missing "${FASTAPI_DEB_PACKAGES[@]}" >&2) || return 1
	fi
	for candidate in python3 /usr/bin/python3; do
		if "$candidate" -c "$FASTAPI_IMPORTS" 2>/dev/null; then
			PY=$(command -v "$candidate")
			return 0
		fi
	done
	echo "error: no python3 imports the packages of $here/requirements.txt (set PYTHON)" >&2
	return 1
}
