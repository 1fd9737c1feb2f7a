#!/usr/bin/env bash
# Lint and import order (ruff, configured in ruff.toml) over the package, tests, training and benches, then
# type checking (mypy, configured in mypy.ini) of the package, training and benches. Exit 1 if either fails.
#   bash scripts/lint.sh            # check
#   bash scripts/lint.sh --fix      # apply ruff's safe fixes (import order), then type-check
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
rc=0
"$ROOT/.venv/bin/ruff" check "$@" event_clip_ros test training bench launch setup.py || rc=1
"$ROOT/.venv/bin/mypy" --config-file "$ROOT/mypy.ini" || rc=1
exit "$rc"
