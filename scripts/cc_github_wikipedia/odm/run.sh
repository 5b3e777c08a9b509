#!/usr/bin/env bash
# cc_github_wikipedia / odm: the same as `bash scripts/run.sh cc_github_wikipedia odm`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../run.sh" cc_github_wikipedia odm "$@"
