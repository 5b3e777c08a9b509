#!/usr/bin/env bash
# cc_github_wikipedia / doge: the same as `bash scripts/run.sh cc_github_wikipedia doge`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" cc_github_wikipedia doge "$@"
