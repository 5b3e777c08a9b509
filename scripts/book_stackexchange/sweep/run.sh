#!/usr/bin/env bash
# book_stackexchange / sweep: the same as `bash scripts/run.sh book_stackexchange sweep`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" book_stackexchange sweep "$@"
