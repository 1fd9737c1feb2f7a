#!/usr/bin/env bash
# Lint and import order (ruff, configured in ruff.toml) over the package, tests, training and benches.
#   bash scripts/lint.sh            # check
#   bash scripts/lint.sh --fix      # apply the safe fixes (import order)
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
exec "$ROOT/.venv/bin/ruff" check "$@" event_clip_ros test training bench launch setup.py
