#!/usr/bin/env bash
# Set up the js-libp2p 3.x peer the interop tests talk to (tests/interop/js, tests/interop/test_jslibp2p.py):
# `npm ci` in that folder from its lock file. js-libp2p 3 needs Node.js 22 and Debian 12 ships older, so the
# lock file also brings Node itself, as the npm package node@22 (tests/interop/js/node_modules/.bin/node).
# First run: about a minute and 290 MB (218 packages plus the Node binary); afterwards a no-op.
# Never fatal: without npm, or when the install fails, it says so and the js interop tests skip with a reason.
# Network use: the npm registry only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../tests/interop/js"

if [ -x node_modules/.bin/node ] && [ -d node_modules/libp2p ] \
        && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "setup-interop-js: no npm on this machine: the js-libp2p interop tests will skip" >&2
    exit 0
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! timeout 900 npm ci --no-audit --no-fund >"$log" 2>&1 || ! node_modules/.bin/node --version >/dev/null 2>&1; then
    tail -n 20 "$log" >&2
    echo "setup-interop-js: npm ci failed: the js-libp2p interop tests will skip" >&2
fi
