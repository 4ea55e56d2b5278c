#!/usr/bin/env sh
# Regenerate the checked-in protobuf modules (p2pnode/kad/pb/*_pb2.py) from their .proto files.
# Needs grpcio-tools (the `dev` extra). The generated code requires a protobuf runtime at least as
# new as the protoc bundled with grpcio-tools, so regenerate with the same environment you ship.
# Usage: scripts/gen-protos.sh [python]   (default: .venv/bin/python, else python3)
set -eu
cd "$(dirname "$0")/.."

PYTHON="${1:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

PB=p2pnode/kad/pb
# -I . (the repository root) names the files p2pnode/kad/pb/*.proto in protobuf's process-wide descriptor
# pool, so another library's "dht.proto" cannot clash with ours, and the classes get the right __module__.
"$PYTHON" -m grpc_tools.protoc -I . --python_out=. "$PB/dht.proto" "$PB/record.proto"

# Neither .proto imports the other, so protoc emits no bare `import dht_pb2` that would break package
# imports. Fail loudly if that ever changes rather than ship modules that only import from $PB.
if grep -nE '^import [a-z_]+_pb2' "$PB"/*_pb2.py; then
    echo "gen-protos: generated code has a top-level *_pb2 import; make it relative" >&2
    exit 1
fi
echo "gen-protos: regenerated $PB/dht_pb2.py and $PB/record_pb2.py"
