#!/usr/bin/env bash
# full / skillit: the same as `bash scripts/run.sh full skillit`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" full skillit "$@"
