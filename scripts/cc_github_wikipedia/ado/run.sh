#!/usr/bin/env bash
# cc_github_wikipedia / ado: the same as `bash scripts/run.sh cc_github_wikipedia ado`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" cc_github_wikipedia ado "$@"
