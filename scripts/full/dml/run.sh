#!/usr/bin/env bash
# full / dml: the same as `bash scripts/run.sh full dml`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" full dml "$@"
