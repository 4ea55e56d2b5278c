#!/usr/bin/env bash
# Set up the MCP project's conformance suite (npm @modelcontextprotocol/conformance, which needs Node >= 22)
# in .conformance/ of the repo (or $MCP_CONFORMANCE_DIR): npm installs the node@22 package (a Node 22
# binary) and the suite there. tests/mcp/test_conformance.py runs it against a node's /mcp; without it,
# those tests skip. Idempotent and quiet; needs npm (any Node version). Network use: npm only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DIR="${MCP_CONFORMANCE_DIR:-.conformance}"
VERSION="0.1.16"

if [ -x "$DIR/node_modules/.bin/conformance" ] && [ -x "$DIR/node_modules/.bin/node" ] \
        && grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/@modelcontextprotocol/conformance/package.json"; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "setup-conformance: npm not found; the MCP conformance tests will skip" >&2; exit 0; }
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "node@22" "@modelcontextprotocol/conformance@$VERSION" >/dev/null
"$DIR/node_modules/.bin/node" --version >/dev/null
