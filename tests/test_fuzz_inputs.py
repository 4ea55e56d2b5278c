"""Smoke runs of every fuzz target (fuzz/): its seed corpus (with the inputs that once crashed it), and a few
dozen mutations of the seeds."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz._campaign import campaign
from fuzz._runner import Hang, Target, all_targets, mutations, replay, run, seeds

TARGETS = all_targets()
EXAMPLES = 40


def test_every_decoder_family_has_a_target():
    assert {"varint", "kad", "pubsub", "identify", "relay", "autonat", "reqresp", "envelope", "multistream",
            "noise", "yamux", "tls_cert", "multiaddr", "jsonrpc", "scenario_yaml", "node_toml"} <= set(TARGETS)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seed_corpus(name):
    assert seeds(name)
    for data in seeds(name):
        TARGETS[name].check(data)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutations(name):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutations(name))
    def run(data):
        TARGETS[name].check(data)

    run()



def test_the_runner_reports_a_crash_and_keeps_its_input(tmp_path):
    def check(data: bytes) -> None:
        if len(data) > 3:
            raise KeyError("a bug")

    crashing = Target("kad", check, None)
    with pytest.raises(KeyError):
        run(crashing, seconds=5, seed=1, timeout=5, workdir=tmp_path, extra=[], splice=True)
    (found,) = tmp_path.glob("crash-*.bin")
    assert len(found.read_bytes()) > 3


def test_the_runner_reports_an_input_that_hangs_as_a_crash(tmp_path):
    def check(data: bytes) -> None:
        while True:
            pass

    with pytest.raises(Hang):
        run(Target("kad", check, None), seconds=5, seed=1, timeout=0.2, workdir=tmp_path, extra=[], splice=True)
    assert list(tmp_path.glob("crash-*.bin"))


@pytest.mark.slow  # a process per target, each importing every target
def test_a_campaign_counts_executions_and_crashes(tmp_path, capsys):
    status = campaign(["reqresp"], seconds=2, seed=0, timeout=5, out=tmp_path, extra=["--splice"])
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("reqresp"))
    assert status == 0 and int(row.split()[1].replace(",", "")) > 0 and row.split()[4] == "0"


def test_replay_tells_an_input_that_fails_or_hangs_from_one_that_passes(tmp_path, capsys):
    def check(data: bytes) -> None:
        if data == b"bug":
            raise KeyError("a bug")
        while data == b"hang":
            pass

    files = []
    for name in ("ok", "bug", "hang"):
        files.append(tmp_path / name)
        files[-1].write_bytes(name.encode())
    target = Target("kad", check, None)
    assert replay(target, files[:1], timeout=1) == 0
    assert replay(target, files[1:2], timeout=1) == 1 and "KeyError" in capsys.readouterr().out
    assert replay(target, files[2:], timeout=0.2) == 1 and "Hang" in capsys.readouterr().out
