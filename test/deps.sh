#!/usr/bin/env bash
# Install the Debian packages that cache_ext's build, tests and demo need,
# skipping those already installed (so a re-run costs a few dpkg queries),
# and those the FastAPI example and its end-to-end test run with
# (examples/fastapi/requirements.txt).
# Runs apt-get as root, or through sudo when not root.
set -euo pipefail
# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=examples/fastapi/python.sh
. "$CE_ROOT/examples/fastapi/python.sh"
ce_deps
ce_install_missing "${FASTAPI_DEB_PACKAGES[@]}"
