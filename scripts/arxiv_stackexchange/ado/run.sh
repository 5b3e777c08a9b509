#!/usr/bin/env bash
# arxiv_stackexchange / ado: the same as `bash scripts/run.sh arxiv_stackexchange ado`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" arxiv_stackexchange ado "$@"
