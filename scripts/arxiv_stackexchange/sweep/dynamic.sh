#!/usr/bin/env bash
# arxiv_stackexchange / dynamic: the same as `bash scripts/run.sh arxiv_stackexchange dynamic`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" arxiv_stackexchange dynamic "$@"
