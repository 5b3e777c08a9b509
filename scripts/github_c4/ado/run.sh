#!/usr/bin/env bash
# github_c4 / ado: the same as `bash scripts/run.sh github_c4 ado`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" github_c4 ado "$@"
