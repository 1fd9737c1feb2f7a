#!/usr/bin/env bash
# Set up (or update) .venv, then show the CLI on the bundled sample recording: print what the
# file holds, and render 50 ms event windows as frames into out/demo/.
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup_env.sh"
# shellcheck source=/dev/null
source "$ROOT/.venv/env.sh"
cd "$ROOT"
SAMPLE=data/samples/shapes.raw
[[ -f $SAMPLE ]] || { echo "demo.sh: error: sample recording $SAMPLE is missing" >&2; exit 1; }
set -x
.venv/bin/event-clip inspect "$SAMPLE"
.venv/bin/event-clip render "$SAMPLE" --window-ms 50 --out out/demo
