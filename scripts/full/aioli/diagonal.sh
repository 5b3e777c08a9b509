#!/usr/bin/env bash
# full / aioli_diagonal: the same as `bash scripts/run.sh full aioli_diagonal`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" full aioli_diagonal "$@"
