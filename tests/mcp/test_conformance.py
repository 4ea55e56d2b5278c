"""The MCP project's conformance suite (npm @modelcontextprotocol/conformance 0.1.16, on Node 22) against a
real node's /mcp: its generic server scenarios. (The suite's other server scenarios call fixture tools,
prompts and resources of its reference server, such as test_simple_text or test://static-text, and its
0.1.16 release has no 2026-07-28 scenarios; the SDK tests cover that revision.) Installed by
scripts/setup-conformance.sh; without it these tests skip."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.mcp.procs import NodeProcess, write_config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("MCP_CONFORMANCE_DIR", ROOT / ".conformance")) / "node_modules" / ".bin"
SCENARIOS = ["server-initialize", "ping", "logging-set-level", "tools-list", "resources-list",
             "server-sse-multiple-streams", "dns-rebinding-protection"]

pytestmark = pytest.mark.skipif(not (BIN / "conformance").exists(),
                                reason="MCP conformance suite not installed (scripts/setup-conformance.sh)")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    proc = NodeProcess(write_config(tmp_path_factory.mktemp("conformance")))
    yield proc
    proc.stop()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario(node, scenario, tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run([str(BIN / "conformance"), "server", "--url", node.url, "--scenario", scenario,
                          "-o", str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    checks = [c for f in tmp_path.glob("*/checks.json") for c in json.loads(f.read_text())]
    assert checks, run.stdout + run.stderr
    failed = [c for c in checks if c["status"] not in ("SUCCESS", "INFO")]
    assert not failed, failed
