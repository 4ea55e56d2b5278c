"""`simulate` refuses what it cannot run before it makes anything: exit 2, one short line naming the field and the
line, no run directory (issue 14)."""

from __future__ import annotations

import pytest

from sim.cli import main as simulate

BASE = "name: x\nwarmup: 30\nduration: 60\nnodes:\n  count: 30\n  bootstrap: 3\n  join_over: 10\n"


def refused(tmp_path, capsys, text: str | None, *args: str) -> str:
    scenario = tmp_path / "s.yaml"
    if text is not None:
        scenario.write_text(text)
    out = tmp_path / "out"
    assert simulate([str(scenario), "--out", str(out), *args]) == 2
    assert not out.exists()  # the run directory is made only for a run that will start
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("simulate: ") and len(line) < 320
    return line.removeprefix("simulate: ")


@pytest.mark.parametrize(("extra", "expected"), [
    ("churn:\n  session: {distribution: weibull, shape: 0.001, scale: 100}\n", ":9: churn.session.shape: "),
    ("churn:\n  session: {distribution: lognormal, mu: 1000, sigma: 1}\n", ":9: churn.session.mu: "),
    ("churn:\n  session: {distribution: lognormal, mu: 1, sigma: 1.0e+200}\n", ":9: churn.session.sigma: "),
    ("measure: {sample_interval: 1.0e-9}\n", ":8: measure.sample_interval: "),
    ("dht: {refresh_interval: 1.0e-9}\n", ":8: dht.refresh_interval: "),
    ("workload: {lookup: 1.0e+12}\n", ":8: workload.lookup: "),
])
def test_issue_values(tmp_path, capsys, extra, expected):
    assert expected in refused(tmp_path, capsys, BASE + extra)


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\nwarmup: 1.0e+308\n", "s.yaml:2: warmup: must be <= 3.1536e+07, got 1e+308"),
    ("name: x\nduration: 1.0e+300\n", "s.yaml:2: duration: must be <= 3.1536e+07, got 1e+300"),
    ("name: x\nnodes: {count: 1000000000}\n", "s.yaml:2: nodes.count: must be <= 1000000, got 1000000000"),
])
def test_end_time_and_size(tmp_path, capsys, text, expected):
    assert refused(tmp_path, capsys, text).endswith(expected)


def test_nodes_option(tmp_path, capsys):
    line = refused(tmp_path, capsys, BASE, "--nodes", "100000000000")
    assert line.endswith("s.yaml (override): nodes.count: must be <= 1000000, got 100000000000")


def test_a_run_too_big_for_this_machine_says_the_estimate(tmp_path, capsys):
    line = refused(tmp_path, capsys, "name: x\nnodes: {count: 1000000}\nduration: 31536000\n")
    assert ":2: nodes.count: 1000000 simulated nodes need about" in line or ": about " in line


def test_a_device_as_the_scenario(tmp_path, capsys):
    scenario = tmp_path / "s.yaml"
    scenario.symlink_to("/dev/urandom")
    assert refused(tmp_path, capsys, None) == f"{scenario}: is a character device; expected a regular file"


def test_matrix_regions_missing_from_its_header(tmp_path, capsys):
    (tmp_path / "rtt.csv").write_text("region,a,c\na,10,20\nc,20,10\n")
    text = BASE.replace("  join_over: 10\n", "  join_over: 10\n  regions: {a: 0.5, b: 0.5}\n")
    line = refused(tmp_path, capsys, text + "network: {latency: {model: matrix, matrix: rtt.csv}}\n")
    assert line.endswith("s.yaml:8: nodes.regions.b: 'b' is not one of a, c")


def test_matrix_not_utf8_or_infinite(tmp_path, capsys):
    text = BASE.replace("  join_over: 10\n", "  join_over: 10\n  regions: {a: 0.5, c: 0.5}\n")
    text += "network: {latency: {model: matrix, matrix: rtt.csv}}\n"
    (tmp_path / "rtt.csv").write_bytes(b"region,a,c\na,10,20\nc,20,10\xff\n")
    assert refused(tmp_path, capsys, text).endswith("rtt.csv:3: cannot read the latency matrix: "
                                                    "not UTF-8 text (byte 0xff on line 3)")
    (tmp_path / "rtt.csv").write_text("region,a,c\na,10,inf\nc,inf,10\n")
    assert refused(tmp_path, capsys, text).endswith("rtt.csv:2: RTT values are milliseconds in [0, 60000], got inf")
