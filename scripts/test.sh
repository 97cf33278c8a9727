#!/usr/bin/env bash
# Sets up and runs farmhand's whole test suite: unit tests (also under
# AddressSanitizer and UBSan), libFuzzer runs of the protocol decoder and
# the config parser, integration tests as root with real debootstrap, nspawn
# and mounts, a real farmhand-server with real agents, the dashboard in
# headless Chromium, and the benchmarks, which print figures.
# Base trees are cached in /var/cache/farmhand-tests between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build (warnings are errors)"
scripts/setup.sh -DFARMHAND_WERROR=ON
echo "== build with sanitizers (the unit tests only: they are what runs under them)"
FARMHAND_BUILD_DIR=build-asan FARMHAND_BUILD_TARGETS="farmhand_common_tests farmhand_provisioner_tests
  farmhand_agent_tests farmhand_udev_tests farmhand_server_tests" scripts/setup.sh -DFARMHAND_WERROR=ON -DFARMHAND_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=Debug

echo "== unit tests under AddressSanitizer and UBSan"
ctest --test-dir build-asan -L unit --output-on-failure -j2

echo "== fuzzing the protocol decoder and the config parser (bounded)"
scripts/fuzz.sh "${FARMHAND_FUZZ_SECONDS:-60}"

echo "== benchmarks"
tests/bench/run_all.sh build/agent/farmhand

echo "== unit and integration tests"
ctest --test-dir build --output-on-failure -j2
