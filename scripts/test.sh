#!/usr/bin/env bash
# Sets up and runs farmhand's whole test suite: unit tests under
# AddressSanitizer and UBSan, libFuzzer runs of the protocol decoder and the
# config parser, the benchmarks, which print figures, and the integration
# tests as root with real debootstrap, nspawn and mounts, booted test hosts,
# a real farmhand-server with real agents, and the dashboard in headless
# Chromium.
#
# Everything it builds once is kept in the test cache (FARMHAND_TEST_CACHE,
# default /var/cache/farmhand-tests): base trees, test-host images, the
# packages the test hosts fetch through their apt proxy, and compiled
# objects (ccache). With an empty cache
# (FARMHAND_TEST_CACHE=$(mktemp -d)) it builds them all, as on a new machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# Compiles are cached with the rest, so a warm run builds only what changed.
export FARMHAND_CCACHE_DIR=${FARMHAND_CCACHE_DIR:-${FARMHAND_TEST_CACHE:-/var/cache/farmhand-tests}/ccache}

t_all=$SECONDS
t_phase=$SECONDS
phase() {
  if [ -n "${PHASE:-}" ]; then echo "-- $PHASE: $((SECONDS - t_phase)) s"; fi
  PHASE=$1
  t_phase=$SECONDS
  echo "== $1"
}

# The optimised build the integration tests and benchmarks run. The unit
# tests are built once, in the sanitizer build below, and run there.
phase "build (warnings are errors)"
scripts/setup.sh -DFARMHAND_WERROR=ON -DFARMHAND_BUILD_UNIT_TESTS=OFF
phase "build the unit tests with AddressSanitizer and UBSan"
FARMHAND_BUILD_DIR=build-asan FARMHAND_BUILD_TARGETS="farmhand_common_tests farmhand_provisioner_tests
  farmhand_agent_tests farmhand_udev_tests farmhand_server_tests" scripts/setup.sh -DFARMHAND_WERROR=ON \
  -DFARMHAND_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug

phase "unit tests under AddressSanitizer and UBSan"
ctest --test-dir build-asan -L unit --output-on-failure -j2

phase "fuzzing the protocol decoder and the config parser (bounded)"
scripts/fuzz.sh "${FARMHAND_FUZZ_SECONDS:-60}"

phase "benchmarks"
tests/bench/run_all.sh build/agent/farmhand

phase "integration tests"
# Verbose: the system tests print B4's and B6's figures.
ctest --test-dir build -L integration --output-on-failure --verbose

phase "done"
echo "whole suite: $((SECONDS - t_all)) s"
