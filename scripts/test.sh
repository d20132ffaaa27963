#!/usr/bin/env bash
# Runs berth's whole test suite: unit, property and end-to-end tests.
# Installs what the tests need on a fresh machine: the AWS CLI and boto3, which the
# end-to-end tests drive berth with, as users do; busybox, for the local test image.
# Needs a running Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import boto3' 2>/dev/null || ! command -v aws >/dev/null 2>&1; then
  echo "test.sh: installing the AWS CLI and boto3 (pip)"
  python3 -m pip install --quiet --disable-pip-version-check awscli boto3
fi

# The local image the Docker tests run (no registry is reachable from CI).
./scripts/build-test-image.sh >/dev/null

cargo test --workspace --all-targets "$@"
