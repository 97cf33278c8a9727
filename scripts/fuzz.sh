#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (in build-fuzz/) and runs each for a
# bounded time, starting from the seed corpus in tests/fuzz/corpus. Any crash,
# leak or sanitizer report fails the run and leaves the reproducer in
# build-fuzz/artifacts/. Usage: scripts/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}

for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ -n "${missing[*]:-}" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

source scripts/ccache.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "${CCACHE_CMAKE_ARGS[@]}" -DFARMHAND_FUZZ=ON -DFARMHAND_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz --target farmhand_protocol_fuzz farmhand_config_fuzz

mkdir -p build-fuzz/artifacts
for target in protocol config; do
  mkdir -p "build-fuzz/corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  # The found corpus lives in build-fuzz/ (not committed); the seeds are read only.
  "build-fuzz/tests/fuzz/farmhand_${target}_fuzz" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="build-fuzz/artifacts/$target-" -print_final_stats=1 \
    "build-fuzz/corpus/$target" "tests/fuzz/corpus/$target" 2>&1 |
    grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY)" || true
done
# libFuzzer exits non-zero on a finding; grep above hides its status, so check artifacts.
if compgen -G "build-fuzz/artifacts/*" >/dev/null; then
  echo "fuzz: FAILED, reproducers in build-fuzz/artifacts/" >&2
  ls -l build-fuzz/artifacts/ >&2
  exit 1
fi
echo "fuzz: no crash"
