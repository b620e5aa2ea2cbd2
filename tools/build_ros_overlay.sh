#!/usr/bin/env bash
# Builds a ROS 2 overlay at .ros_overlay/ in the repository root, for machines without a ROS installation
# (the development venv has ROS 2 Jazzy from PyPI wheels; see docs/ros_overlay.md). A robot does not need this:
# there apt installs all of it and /opt/ros/jazzy/setup.bash is sourced instead.
#
#   1. the ROS packages that have no wheel (launch, launch_ros, ros2cli and its verbs, rosidl_runtime_py,
#      composition_interfaces, hri_msgs), built with colcon out of tree from ../shared/ros_src (never edited);
#   2. this package, built with colcon --symlink-install (edits of python, launch and config files are live);
#   3. .ros_overlay/setup.sh: source it (bash or sh) to get `ros2` and all of the above on the paths.
#
# Idempotent: each of 1 and 2 has a stamp; a second run with nothing changed only checks them and exits.
# A change of setup.py, setup.cfg, package.xml or of the launch/config file names rebuilds this package only.
# Environment: ROS_SRC (default ../shared/ros_src), OVERLAY_JOBS (make -j of the C/C++ builds; default 2).
# colcon builds one package at a time (the venv has only its sequential executor).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
case $root in *[\'\"\\\ ]*) echo "build_ros_overlay: the repository path must not contain quotes, backslashes or spaces: $root" >&2; exit 1 ;; esac

src=$(cd "${ROS_SRC:-$root/../shared/ros_src}" 2>/dev/null && pwd) || {
  echo "build_ros_overlay: no ROS sources at ${ROS_SRC:-$root/../shared/ros_src} (shared/ must lie beside the repository)" >&2
  exit 1
}
jobs=${OVERLAY_JOBS:-2}
overlay=$root/.ros_overlay
build=$overlay/build
install=$overlay/install
venv=$root/.venv
python=$venv/bin/python
self=$(sed -n 's:.*<name>\(.*\)</name>.*:\1:p' package.xml | head -n1)
# The sources' packages, in no particular order (colcon orders them); ../shared/ros_src/README.md lists them.
ros_packages=(launch launch_xml launch_yaml launch_ros ros2launch ros2cli ros2pkg ros2run ros2topic ros2lifecycle
              ros2param ros2node ros2service rosidl_runtime_py composition_interfaces hri_msgs)
# Message packages: their lib/ (the C typesupport libraries) goes on LD_LIBRARY_PATH.
msg_packages=(composition_interfaces hri_msgs)

# The venv (and with it the extra wheels this build needs: tools/requirements.txt) comes first.
./tools/setup_venv.sh
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
site=lib/python$pyver/site-packages

digest() { sha256sum | cut -d' ' -f1; }
# What the ROS packages' build depends on: this script, the venv's requirements, the interpreter, the paths and
# every source file.
ros_want=$({ cat tools/build_ros_overlay.sh tools/requirements.txt tools/constraints.txt
             echo "$root $src $pyver"
             (cd "$src" && find "${ros_packages[@]}" -type f -not -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum)
           } | digest)
# What this package's build depends on: its build files and the names of the files setup.py globs.
self_want=$({ cat tools/build_ros_overlay.sh setup.py setup.cfg package.xml
              echo "$root $ros_want"
              find resource launch config -type f | LC_ALL=C sort
            } | digest)
ros_stamp=$overlay/.ros-stamp
self_stamp=$overlay/.self-stamp
if [[ -f $ros_stamp && $(cat "$ros_stamp") == "$ros_want" && -f $self_stamp && $(cat "$self_stamp") == "$self_want"
      && -x $install/ros2cli/bin/ros2 && -f $overlay/setup.sh ]]; then
  exit 0
fi

# colcon from the venv, with no user configuration (mixins, defaults) and logs inside the overlay. Only its
# start/end lines reach the console; all of its output (setuptools' warnings, compiler output...) goes to
# .ros_overlay/log/<name>.log, whose end is printed when the build fails.
export COLCON_HOME=$overlay/colcon_home
colcon_build() {  # NAME COLCON-BUILD-ARGUMENTS...
  local output=$overlay/log/$1.log status
  shift
  mkdir -p "$overlay/log"
  set +o pipefail  # the filter's status must not hide colcon's: PIPESTATUS[0] is read below
  "$venv/bin/colcon" --log-base "$overlay/log" build "$@" 2>&1 | tee "$output" \
    | { grep --line-buffered -E '^(Starting|Finished|Failed|Aborted) ' || true; }
  status=${PIPESTATUS[0]}
  set -o pipefail
  if ((status != 0)); then
    { echo "build_ros_overlay: colcon build failed (exit $status); the end of $output:"; tail -n 60 "$output"; } >&2
    return 1
  fi
}

# The wheels install their CMake config files into the venv's root (share/<pkg>/cmake); the venv's tools first.
export AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv PATH=$venv/bin:$PATH MAKEFLAGS=-j$jobs
unset PYTHONPATH

# The wheels' exported CMake targets name the include folders of the machine they were built on; CMake stops
# with "Imported target ... includes non-existent path". Point them at this venv's Python and numpy (idempotent:
# once rewritten, the old paths are gone).
fix_wheel_cmake_exports() {
  local py_include np_include files
  py_include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_include=$("$python" -c 'import numpy; print(numpy.get_include())')
  files=$(grep -rl --include='*.cmake' -e /opt/python/cp "$venv/share" || true)
  [[ -n $files ]] || return 0
  echo "build_ros_overlay: rewriting the wheel-build include paths in $(wc -l <<<"$files") CMake exports of the venv"
  # shellcheck disable=SC2086  # one file per line, no spaces (checked above)
  sed -i -E -e "s#/opt/python/cp[0-9]+-cp[0-9]+/lib/python[0-9.]+/site-packages/numpy/_core/include#$np_include#g" \
            -e "s#/opt/python/cp[0-9]+-cp[0-9]+/include/python[0-9.]+#$py_include#g" $files
}

started=$SECONDS
mkdir -p "$overlay"
if [[ ! -f $ros_stamp || $(cat "$ros_stamp") != "$ros_want" ]]; then
  echo "build_ros_overlay: building ${#ros_packages[@]} ROS packages from $src into $install"
  # From scratch (this package too): a build folder left from other sources or wheels could hide a change.
  rm -rf "$ros_stamp" "$self_stamp" "$overlay/setup.sh" "$build" "$install"
  fix_wheel_cmake_exports
  # Out of tree: build and install bases in .ros_overlay; colcon only reads the sources.
  colcon_build ros_packages --base-paths "$src" --packages-select "${ros_packages[@]}" \
    --build-base "$build" --install-base "$install" \
    --cmake-args -DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$python" --no-warn-unused-cli
  echo "$ros_want" > "$ros_stamp"
fi

if [[ ! -f $self_stamp || $(cat "$self_stamp") != "$self_want" ]]; then
  echo "build_ros_overlay: building $self (symlink install) into $install"
  rm -f "$self_stamp" "$overlay/setup.sh"
  # From scratch, so that removed entry points, launch or config files do not linger.
  rm -rf "${build:?}/$self" "${install:?}/$self"
  colcon_build "$self" --paths "$root" --build-base "$build" --install-base "$install" --symlink-install
  echo "$self_want" > "$self_stamp"
fi

# setup.sh: POSIX sh, so that `. .ros_overlay/setup.sh` works from bash, dash and sh alike. Absolute paths: the
# overlay is not relocatable anyway (its scripts name the venv's python).
{
  echo "# Generated by tools/build_ros_overlay.sh: the overlay's ROS 2 environment. Source it: . .ros_overlay/setup.sh"
  echo "# (a robot sources /opt/ros/jazzy/setup.bash instead). Sourcing it twice adds nothing twice."
  echo '_ros_overlay_prepend() {  # VARIABLE FOLDER: FOLDER first in the :-list VARIABLE, unless already in it'
  echo '  eval "_ros_overlay_old=\${$1:-}"'
  echo '  case ":$_ros_overlay_old:" in'
  echo '    *":$2:"*) ;;'
  echo '    "::") eval "$1=\$2" ;;'
  echo '    *) eval "$1=\$2:\$_ros_overlay_old" ;;'
  echo '  esac'
  echo '  export "$1"'
  echo '}'
  # Each line prepends: the venv, written first, ends up after the overlay prefixes in each list.
  echo "_ros_overlay_prepend AMENT_PREFIX_PATH '$venv'"
  echo "_ros_overlay_prepend PATH '$venv/bin'"
  for prefix in "$install"/*/; do
    prefix=${prefix%/}
    [[ -d $prefix/share/ament_index || -d $prefix/$site ]] || continue
    echo "_ros_overlay_prepend AMENT_PREFIX_PATH '$prefix'"
    if [[ -d $prefix/$site ]]; then echo "_ros_overlay_prepend PYTHONPATH '$prefix/$site'"; fi
    if [[ -d $prefix/bin ]]; then echo "_ros_overlay_prepend PATH '$prefix/bin'"; fi
  done
  for pkg in "${msg_packages[@]}"; do
    echo "_ros_overlay_prepend LD_LIBRARY_PATH '$install/$pkg/lib'"
  done
  echo '# Discovery stays on this machine unless the caller chose otherwise.'
  echo ': "${ROS_AUTOMATIC_DISCOVERY_RANGE:=LOCALHOST}"'
  echo 'export ROS_AUTOMATIC_DISCOVERY_RANGE'
  echo 'unset -f _ros_overlay_prepend'
  echo 'unset _ros_overlay_old'
} > "$overlay/setup.sh.tmp"
mv "$overlay/setup.sh.tmp" "$overlay/setup.sh"
echo "build_ros_overlay: ready in $((SECONDS - started)) s; use it with: . .ros_overlay/setup.sh"
