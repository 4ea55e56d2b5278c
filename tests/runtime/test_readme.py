"""The README's Python example runs as printed (a basic node in fewer than ten lines)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from p2pnode.nodeconfig import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_readme_python_example_runs_and_is_short():
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert len([line for line in example.splitlines() if line.strip()]) < 10
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "b'hello'"


def test_example_config_loads():
    config = load_config(ROOT / "examples" / "node.toml")
    assert config.network.listen_addresses[0] == "/ip6/::/tcp/9000"
    assert config.dht.replication_factor == 20
