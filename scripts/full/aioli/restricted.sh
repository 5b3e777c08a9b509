#!/usr/bin/env bash
# full / aioli_restricted: the same as `bash scripts/run.sh full aioli_restricted`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" full aioli_restricted "$@"
