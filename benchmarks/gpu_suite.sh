#!/usr/bin/env bash
# One command for a machine with a GPU: every GPU benchmark section, one table (see benchmarks/gpu_suite.py).
#   bash benchmarks/gpu_suite.sh            # W-paper sizes, target under 8 minutes on an H100
#   bash benchmarks/gpu_suite.sh --small    # CPU sizes: checks the whole suite end to end
# Record the table it prints in benchmarks/RESULTS.md with the device and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" benchmarks/gpu_suite.py "$@"
