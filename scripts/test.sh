#!/usr/bin/env bash
# Set up (or update) .venv, then run pytest from the repo root; arguments go to pytest
# (default: the whole suite in test/).
#
#   bash scripts/test.sh                       # everything
#   bash scripts/test.sh test/test_ros_env.py -q
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup_env.sh"
# shellcheck source=/dev/null
source "$ROOT/.venv/env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
