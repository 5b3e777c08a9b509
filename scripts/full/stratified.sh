#!/usr/bin/env bash
# full / stratified: the same as `bash scripts/run.sh full stratified`; see scripts/README.md.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../run.sh" full stratified "$@"
