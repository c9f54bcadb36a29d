#!/usr/bin/env bash
# Install the Debian packages that cache_ext's build, tests and demo need,
# skipping those already installed (so a re-run costs a few dpkg queries).
# Runs apt-get as root, or through sudo when not root.
set -euo pipefail
# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ce_deps
