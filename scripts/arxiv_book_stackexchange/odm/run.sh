#!/usr/bin/env bash
# arxiv_book_stackexchange / odm: the same as `bash scripts/run.sh arxiv_book_stackexchange odm`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" arxiv_book_stackexchange odm "$@"
