#!/usr/bin/env bash
# Installs the Node.js test peers pinned in tests/s3/package-lock.json (s3rver, the S3 server of
# tests/e2e/test_s3.py) into tests/s3/node_modules. Needs node and npm (scripts/install-deps.sh).
# Idempotent: does nothing when node_modules already matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/../tests/s3"
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0
fi
echo "install-npm-deps: npm ci in tests/s3" >&2
npm ci --no-audit --no-fund --loglevel=error
