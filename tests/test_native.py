"""The compiled hot paths (p2pnode/native.py): used only when built from the current source, the same
results as pure Python, and pure Python whenever there is no current build."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from p2pnode import native

ROOT = Path(__file__).resolve().parent.parent

# A small churn run in a fresh process: which files the hot modules came from, and the events' digest.
CHILD = """
import hashlib, importlib, json, sys, tempfile
from pathlib import Path
from experiment.scenario import load_scenario
from p2pnode import native
from p2pnode.eventlog import EventWriter
from sim.simulation import Simulation
out = Path(tempfile.mkdtemp()) / "events.csv"
events = EventWriter(out)
Simulation(load_scenario(Path(sys.argv[1])), events).run()
events.close()
print(json.dumps({"status": native.status(), "digest": hashlib.sha256(out.read_bytes()).hexdigest(),
                  "files": [importlib.import_module(m).__file__ for m in native.MODULES]}))
"""
SCENARIO = """
name: native
seed: 5
warmup: 20
duration: 40
nodes: {count: 40, bootstrap: 2, join_over: 10}
dht: {k: 8, alpha: 3}
churn: {session: {distribution: exponential, mean: 30}, offline: {distribution: exponential, mean: 10}}
workload: {lookup: 2.0, put: 0.5, get: 1.0, value_size: 64}
"""


def run_child(tmp_path: Path, **env: str) -> dict:
    scenario = tmp_path / "native.yaml"
    scenario.write_text(SCENARIO)
    environ = {k: v for k, v in os.environ.items() if k not in ("P2PNODE_PURE", "P2PNODE_NATIVE_DIR")}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(scenario)], cwd=ROOT, env={**environ, **env},
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fake_build(tmp_path: Path, sha: str | None = None) -> Path:
    """A build directory whose stamp claims every module, from its current source unless ``sha`` says else."""
    build = tmp_path / "build"
    modules = {}
    for name in native.MODULES:
        file = build / f"{name}.so"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"")
        modules[name] = {"file": file.name, "sha256": sha or native.digest(native.source_of(name))}
    stamp = {"python": sys.implementation.cache_tag, "modules": modules, "shared": {}}
    (build / "stamp.json").write_text(json.dumps(stamp))
    return build


def test_a_current_build_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("P2PNODE_PURE", raising=False)
    files, status = native.plan(fake_build(tmp_path))
    assert status == "compiled" and set(files) == set(native.MODULES)


def test_a_stale_or_missing_build_or_a_request_for_pure_python_falls_back(tmp_path, monkeypatch):
    monkeypatch.delenv("P2PNODE_PURE", raising=False)
    assert native.plan(tmp_path / "nothing") == ({}, "pure (not built)")
    files, status = native.plan(fake_build(tmp_path, sha=hashlib.sha256(b"older source").hexdigest()))
    assert files == {} and "changed since the build" in status
    monkeypatch.setenv("P2PNODE_PURE", "1")
    assert native.plan(fake_build(tmp_path / "current")) == ({}, "pure (P2PNODE_PURE)")


def test_pure_python_runs_from_the_sources(tmp_path):
    child = run_child(tmp_path, P2PNODE_PURE="1")
    assert child["status"] == "pure (P2PNODE_PURE)"
    assert all(file.endswith(".py") for file in child["files"])


def _compiled_and_pure(tmp_path: Path, build: Path) -> None:
    compiled = run_child(tmp_path, P2PNODE_NATIVE_DIR=str(build))
    assert compiled["status"] == "compiled", compiled["status"]
    assert all(file.endswith(".so") for file in compiled["files"])
    assert compiled["digest"] == run_child(tmp_path, P2PNODE_PURE="1")["digest"]


def test_the_current_build_gives_the_same_run_as_pure_python(tmp_path):
    if native.plan(native.BUILD)[1] != "compiled":
        pytest.skip(f"no current build in {native.BUILD} (scripts/build-native.py)")
    _compiled_and_pure(tmp_path, native.BUILD)


@pytest.mark.slow
def test_a_fresh_build_gives_the_same_run_as_pure_python(tmp_path):
    pytest.importorskip("mypyc")
    build = tmp_path / "native"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-native.py"), "--out", str(build)], check=True)
    _compiled_and_pure(tmp_path, build)
