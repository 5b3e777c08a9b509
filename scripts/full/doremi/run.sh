#!/usr/bin/env bash
# full / doremi: the same as `bash scripts/run.sh full doremi`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" full doremi "$@"
