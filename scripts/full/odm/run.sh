#!/usr/bin/env bash
# full / odm: the same as `bash scripts/run.sh full odm`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" full odm "$@"
