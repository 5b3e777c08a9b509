#!/usr/bin/env bash
# book_stackexchange / odm: the same as `bash scripts/run.sh book_stackexchange odm`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" book_stackexchange odm "$@"
