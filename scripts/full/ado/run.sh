#!/usr/bin/env bash
# full / ado: the same as `bash scripts/run.sh full ado`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" full ado "$@"
