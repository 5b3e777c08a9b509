#!/usr/bin/env bash
# full / doge: the same as `bash scripts/run.sh full doge`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" full doge "$@"
