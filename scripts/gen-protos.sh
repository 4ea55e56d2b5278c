#!/usr/bin/env sh
# Regenerate the checked-in protobuf modules (p2pnode/kad/pb/*_pb2.py, p2pnode/pubsub/pb/rpc_pb2.py,
# p2pnode/pb/*_pb2.py, p2pnode/transports/pb/noise_pb2.py) from their .proto files.
# Needs grpcio-tools (the `dev` extra). The generated code requires a protobuf runtime at least as
# new as the protoc bundled with grpcio-tools, so regenerate with the same environment you ship.
# Usage: scripts/gen-protos.sh [python]   (default: .venv/bin/python, else python3)
set -eu
cd "$(dirname "$0")/.."

PYTHON="${1:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

KAD_PB=p2pnode/kad/pb
PUBSUB_PB=p2pnode/pubsub/pb
TRANSPORTS_PB=p2pnode/transports/pb
# -I . (the repository root) names the files p2pnode/<pkg>/pb/*.proto in protobuf's process-wide descriptor
# pool, so another library's "dht.proto" or "rpc.proto" cannot clash with ours, and the classes get the
# right __module__.
"$PYTHON" -m grpc_tools.protoc -I . --python_out=. "$KAD_PB/dht.proto" "$KAD_PB/record.proto"
"$PYTHON" -m grpc_tools.protoc -I . --python_out=. "$PUBSUB_PB/rpc.proto"
"$PYTHON" -m grpc_tools.protoc -I . --python_out=. p2pnode/pb/identify.proto p2pnode/pb/envelope.proto \
    p2pnode/pb/circuit.proto p2pnode/pb/holepunch.proto p2pnode/pb/autonat.proto p2pnode/pb/autonatv2.proto
"$PYTHON" -m grpc_tools.protoc -I . --python_out=. "$TRANSPORTS_PB/noise.proto"

# No .proto imports another, so protoc emits no bare `import dht_pb2` that would break package imports.
# Fail loudly if that ever changes rather than ship modules that only import from their own directory.
if grep -nE '^import [a-z_]+_pb2' "$KAD_PB"/*_pb2.py "$PUBSUB_PB"/*_pb2.py "$TRANSPORTS_PB"/*_pb2.py; then
    echo "gen-protos: generated code has a top-level *_pb2 import; make it relative" >&2
    exit 1
fi
echo "gen-protos: regenerated $KAD_PB/dht_pb2.py, $KAD_PB/record_pb2.py, $PUBSUB_PB/rpc_pb2.py and $TRANSPORTS_PB/noise_pb2.py"
