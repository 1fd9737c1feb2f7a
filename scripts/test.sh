#!/usr/bin/env bash
# Set up (or update) .venv, then run pytest from the repo root; arguments go to pytest
# (default: the whole suite in test/, which is what CI runs).
#
#   bash scripts/test.sh                       # everything
#   bash scripts/test.sh --quick               # the quick tier: no DDS, no training runs, no builds (~1-2 min)
#   bash scripts/test.sh test/test_ros_env.py -q
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
quick=()
if [[ ${1:-} == --quick ]]; then
  shift
  quick=(-m "not slow and not ros")
fi
bash "$ROOT/scripts/setup_env.sh"
# shellcheck source=/dev/null
source "$ROOT/.venv/env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "${quick[@]}" "$@"
