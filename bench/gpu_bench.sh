#!/usr/bin/env bash
# The GPU benchmark in one command (bench/bench_gpu.py: encoder latency at batch 1 in fp16 and bf16,
# onnxruntime where it is there, the detector end to end; targets printed beside).
#
#   bash bench/gpu_bench.sh [bench_gpu.py options]     # results: $OUT/bench_gpu.json, else bench/results/
#   bash bench/gpu_bench.sh --fetch-wheels             # where pip reaches PyPI: the wheels a bare GPU box lacks
#
# Python: the project's .venv when there is one (a workstation, a robot with ROS 2: the detector then runs
# as the ROS node over DDS), else the system's python3 with torch (a bare GPU box: the detector runs in
# the benchmark's process). What such a box lacks (open_clip_torch, rosbags and what they need; see
# WHEELS) comes from .whl/ when `import open_clip` fails there: fetch them beforehand with --fetch-wheels
# (CPython 3.12, manylinux x86-64; PY_VERSION=3.11 for another Python), and take .whl/ along.
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WHEELS=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 rosbags==0.11.9 apsw==3.54.1.0 backports.zstd==1.8.0
  lz4==4.4.5 ruamel.yaml==0.19.1)

if [[ ${1:-} == --fetch-wheels ]]; then
  py=python3
  [[ -x .venv/bin/python ]] && py=.venv/bin/python
  platforms=()
  for n in 2_28 2_27 2_17 2014 1; do
    if [[ $n == 2014 || $n == 1 ]]; then platforms+=(--platform "manylinux${n}_x86_64"); else platforms+=(--platform "manylinux_${n}_x86_64"); fi
  done
  "$py" -m pip download --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" --implementation cp \
    "${platforms[@]}" -d .whl "${WHEELS[@]}"
  exclude=$(git rev-parse --git-path info/exclude 2>/dev/null || true)  # keep .whl/ out of git
  if [[ -n $exclude ]] && ! grep -qx '/.whl/' "$exclude" 2>/dev/null; then
    mkdir -p "$(dirname "$exclude")" && echo '/.whl/' >>"$exclude"
  fi
  echo "gpu_bench.sh: wheels in $ROOT/.whl ($(du -sh .whl | cut -f1)); take .whl along to the GPU machine"
  exit 0
fi

if [[ -x .venv/bin/python ]]; then
  PY=$ROOT/.venv/bin/python
  # shellcheck source=/dev/null
  [[ -f .venv/env.sh ]] && source .venv/env.sh
else
  PY=$(command -v python3)
fi
if ! "$PY" -c 'import open_clip' 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    site=${TMPDIR:-/tmp}/gpu_bench_site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
    export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "gpu_bench.sh: error: $PY cannot import open_clip and there is no .whl/ (run 'bash bench/gpu_bench.sh" \
      "--fetch-wheels' where pip reaches PyPI, then bring .whl/ along)" >&2
    exit 2
  fi
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
out=${OUT:-$ROOT/bench/results}
exec "$PY" bench/bench_gpu.py --out "$out/bench_gpu.json" "$@"
