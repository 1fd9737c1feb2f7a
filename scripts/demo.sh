#!/usr/bin/env bash
# Set up (or update) .venv, then the main job on built-in defaults: start the detector node on the
# shipped toy model (models/event_clip_toy48.safetensors) and play the shipped recording
# data/samples/glyphs.raw into it over real DDS, printing the labels the node publishes.
# Arguments go to the demo (python -m event_clip_ros.ros.demo --help), e.g.
#   ./scripts/demo.sh --checkpoint vitb.pt --recording my.raw --labels cat,dog --window-ms 50
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup_env.sh"
# shellcheck source=/dev/null
source "$ROOT/.venv/env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m event_clip_ros.ros.demo "$@"
