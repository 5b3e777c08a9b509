#!/usr/bin/env bash
# full / sweep: the same as `bash scripts/run.sh full sweep`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" full sweep "$@"
