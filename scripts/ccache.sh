# shellcheck shell=bash
# Sourced by setup.sh and fuzz.sh: CCACHE_CMAKE_ARGS, the cmake arguments
# that make the build's compiles go through ccache when FARMHAND_CCACHE_DIR
# is set (and take it out again when it is not, for a reused build dir).
#
# The cache is keyed by content, not by where the clone is: paths below this
# tree are hashed relative to it (CCACHE_BASEDIR), and the working directory
# recorded in debug information is left out of the hash (CCACHE_NOHASHDIR).
CCACHE_CMAKE_ARGS=(-DCMAKE_C_COMPILER_LAUNCHER= -DCMAKE_CXX_COMPILER_LAUNCHER=)
if [ -n "${FARMHAND_CCACHE_DIR:-}" ] && command -v ccache >/dev/null; then
  mkdir -p "$FARMHAND_CCACHE_DIR"
  export CCACHE_DIR=$FARMHAND_CCACHE_DIR
  export CCACHE_BASEDIR=$PWD
  export CCACHE_NOHASHDIR=1
  export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-4G}
  CCACHE_CMAKE_ARGS=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
