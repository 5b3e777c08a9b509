#!/usr/bin/env bash
# arxiv_stackexchange / aioli_restricted: the same as `bash scripts/run.sh arxiv_stackexchange aioli_restricted`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" arxiv_stackexchange aioli_restricted "$@"
