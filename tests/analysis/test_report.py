"""The analysis package: loading results, criteria against hand-computed values, reports, CLI, sweeps.

Each test writes a small results directory by hand, following docs/results.md (what a run writes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.cli import main, print_verdict  # noqa: E402
from analysis.compare import compare_runs  # noqa: E402
from analysis.load import AnalysisError, load_run  # noqa: E402
from analysis.report import write_report  # noqa: E402
from analysis.summary import summarise  # noqa: E402

HEADER = "time,kind,node,latency,hops,ok,value,count\n"

# 10 lookups, latencies 0.1 .. 1.0 s, 8 successful; 2 puts (1 ok); 4 gets (3 ok); formation reached at t=3.
ROWS = [
    "0.000000,up,0,,,,1,",
    "0.000000,up,1,,,,1,",
    "1.000000,live,,,,,8,",
    "1.000000,traffic,,,,,1000,10",
    "1.000000,formation,,,,,0.500000,8",
    "2.000000,live,,,,,10,",
    "2.000000,traffic,,,,,3000,30",
    "2.000000,formation,,,,0,1.000000,8",
    "3.000000,formation,,,,1,1.000000,8",
    "3.000000,live,,,,,9,",
    "3.000000,traffic,,,,,5000,50",
    "10.000000,lookup,2,0.100000,1,1,1.000000,5",
    "11.000000,lookup,3,0.200000,2,1,1.000000,6",
    "12.000000,lookup,4,0.300000,2,1,0.900000,7",
    "13.000000,lookup,5,0.400000,3,1,1.000000,8",
    "14.000000,lookup,6,0.500000,3,1,1.000000,9",
    "15.000000,lookup,7,0.600000,3,1,0.800000,10",
    "16.000000,lookup,8,0.700000,4,1,1.000000,11",
    "17.000000,lookup,9,0.800000,4,1,1.000000,12",
    "18.000000,lookup,2,0.900000,5,0,0.500000,13",
    "19.000000,lookup,3,1.000000,5,0,0.400000,14",
    "20.000000,put,2,0.300000,,1,3,6",
    "21.000000,put,3,0.400000,,0,0,6",
    "22.000000,get,4,0.100000,2,1,,4",
    "23.000000,get,5,0.200000,2,1,,4",
    "24.000000,get,6,0.300000,3,0,,5",
    "25.000000,get,7,0.400000,3,1,,5",
    "30.000000,down,4,,,,0,",
    "31.000000,down,5,,,,0,",
    "32.000000,down,6,,,,1,",
    "40.000000,up,4,,,,0,",
    "41.000000,gossip,1,,,,,",  # unknown kind: ignored
]

SCENARIO = {
    "name": "tiny",
    "seed": 7,
    "warmup": 5,
    "duration": 40,
    "nodes": {"count": 10, "bootstrap": 2, "join_over": 5, "regions": {"eu-west": 0.5, "na-east": 0.5}},
    "network": {"latency": {"model": "regions", "jitter": 0.1, "access": [0.002, 0.02]}, "loss": 0.01},
    "dht": {"k": 20, "alpha": 5, "disjoint_paths": 2, "request_timeout": 2.0},
    "churn": {"session": {"distribution": "weibull", "shape": 0.6, "scale": 1800},
              "offline": {"distribution": "exponential", "mean": 600}, "graceful": 0.25},
    "workload": {"lookup": 1.0, "put": 0.1, "get": 0.5, "value_size": 256},
    "criteria": {"formation_time": {"target": 30}, "lookup_p99": {}, "lookup_success": None,
                 "put_get_success": {"target": 0.7}},
}


def write_run(path: Path, rows: list[str] = ROWS, scenario: dict | None = None, nodes: int = 10,
              perf: dict | None = None, tail: str = "", runtime: str = "sim") -> Path:
    """A run directory as the simulator writes it: manifest.json and events.csv (plus an optional tail)."""
    path.mkdir(parents=True)
    manifest = {
        "scenario": scenario or SCENARIO, "seed": 7, "nodes": nodes, "runtime": runtime,
        "versions": {"python": "3.11", "p2pnode": "0.1.0"}, "host": {"name": "test"},
        "started_at": "2025-01-01T00:00:00+00:00",
        "perf": perf or {"wall_seconds": 1.5, "messages": 50, "bytes": 5000, "events_processed": 100,
                         "peak_rss_mb": 80.0, "messages_per_wall_second": 33.3},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "events.csv").write_text(HEADER + "".join(row + "\n" for row in rows) + tail)
    return path


def by_name(summary: dict) -> dict:
    return {c["name"]: c for c in summary["criteria"]}


# --- loading ---------------------------------------------------------------------------------------------


def test_load_dtypes_and_unknown_kinds(tmp_path):
    run = load_run(write_run(tmp_path / "run"))
    assert len(run.events) == len(ROWS) - 1  # the gossip row is dropped
    assert "gossip" not in set(run.events["kind"])
    assert str(run.events["time"].dtype) == "float64"
    assert str(run.events["ok"].dtype) == "Int64"
    assert str(run.events["node"].dtype) == "Int64"
    assert str(run.events["latency"].dtype) == "float64"
    assert run.name == "tiny"
    assert run.damage == ["events.csv: 1 row(s) of unknown kinds ignored (line 33: 'gossip')"]


def test_truncated_final_line_is_dropped(tmp_path):
    whole = summarise(load_run(write_run(tmp_path / "whole")))
    run = load_run(write_run(tmp_path / "crashed", tail="42.000000,lookup,3,0.0"))
    assert run.damage[0] == "events.csv ended with an incomplete line (the run stopped mid-write); it was ignored"
    assert len(run.events) == len(ROWS) - 1
    assert summarise(run)["criteria"] == whole["criteria"]


def test_unfinished_header_means_no_events(tmp_path):
    path = write_run(tmp_path / "run")
    (path / "events.csv").write_text("time,kind,no")
    run = load_run(path)
    assert run.events.empty and run.damage
    summary = summarise(run)
    assert summary["stats"]["lookups"] == 0
    assert by_name(summary)["lookup_p99"] == {**by_name(summary)["lookup_p99"], "value": None, "pass": False}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such directory"),
        (lambda p: p.mkdir(), "no manifest.json"),
        (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{not json")), "not valid JSON (line 1"),
        (lambda p: (p.mkdir(), (p / "manifest.json").write_text("[1]")), "expected a JSON object"),
        (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{}")), "no events.csv"),
    ],
)
def test_bad_directories(tmp_path, setup, message):
    path = tmp_path / "run"
    setup(path)
    with pytest.raises(AnalysisError, match=message.replace("(", r"\(")) as info:
        load_run(path)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_columns_and_bad_values(tmp_path):
    path = write_run(tmp_path / "run")
    (path / "events.csv").write_text("time,kind,node,latency\n1.0,lookup,1,0.2\n")
    with pytest.raises(AnalysisError, match="missing column\\(s\\) hops, ok, value, count"):
        load_run(path)
    (path / "events.csv").write_text(HEADER + "1.0,lookup,1,fast,1,1,1,5\n")
    with pytest.raises(AnalysisError, match="nothing usable: .*line 2: column latency: 'fast' is not a number"):
        load_run(path)
    (path / "events.csv").write_text(HEADER + "1.0,lookup,1,0.2,1,1,1,5\n2.0,lookup,1,0.2,1,1.5,1,5\n")
    run = load_run(path)
    assert len(run.events) == 1 and run.damage == [
        "events.csv: 1 row(s) with values that are not numbers or impossible ignored "
        "(line 3: column ok: 1.5 is not an integer)"]
    # two rows run together (a lost newline) must not be read as one
    (path / "events.csv").write_text(HEADER + "1.0,lookup,1,0.2,1,1,1,52.0,lookup,1,0.2,1,1,1,5\n")
    with pytest.raises(AnalysisError, match=r"malformed CSV \(line 2: expected 8 fields, found 15\)"):
        load_run(path)


# --- criteria and statistics -----------------------------------------------------------------------------


def test_criteria_against_hand_computed_values(tmp_path):
    summary = summarise(load_run(write_run(tmp_path / "run")))
    criteria = by_name(summary)
    assert [c["name"] for c in summary["criteria"]] == [
        "formation_time", "lookup_p99", "lookup_success", "put_get_success"]
    # formation: the t=2 row has value 1 but ok 0; the first row with both is at t=3
    assert criteria["formation_time"]["value"] == 3.0
    assert criteria["formation_time"]["pass"] is True
    # the user-facing lookups are the 4 gets: p99 of 0.1..0.4 (linear): rank 0.99 * 3 = 2.97 -> 0.397
    assert criteria["lookup_p99"]["value"] == 0.397
    assert (criteria["lookup_p99"]["target"], criteria["lookup_p99"]["op"]) == (0.5, "<")
    assert criteria["lookup_p99"]["pass"] is True
    assert "successful or not" in criteria["lookup_p99"]["description"]
    assert criteria["lookup_success"]["value"] == 0.75  # 3 of 4
    assert (criteria["lookup_success"]["target"], criteria["lookup_success"]["pass"]) == (0.99, False)
    assert criteria["put_get_success"]["value"] == 0.75  # 3 of 4 gets
    assert (criteria["put_get_success"]["target"], criteria["put_get_success"]["pass"]) == (0.7, True)
    assert summary["scenario"] == "tiny" and summary["seed"] == 7 and summary["nodes"] == 10
    assert summary["runtime"] == "sim" and summary["simulated_seconds"] == 40.0
    assert list(criteria["lookup_p99"]) == ["name", "description", "value", "target", "op", "unit", "pass"]


def test_lookup_criteria_judge_the_user_facing_lookups_or_else_find_node(tmp_path):
    # find_peer and find_providers rows join the gets; FIND_NODE convergence stays in its own statistics
    extra = ["26.000000,find_peer,2,0.050000,1,1,,3", "27.000000,find_providers,3,2.000000,4,0,0,30",
             "28.000000,provide,4,0.500000,,1,5,25"]
    summary = summarise(load_run(write_run(tmp_path / "user", ROWS + extra)))
    criteria, stats = by_name(summary), summary["stats"]
    latencies = sorted([0.1, 0.2, 0.3, 0.4, 0.05, 2.0])  # rank 0.99 * 5 = 4.95 between 0.4 and 2.0
    assert criteria["lookup_p99"]["value"] == round(latencies[4] + 0.95 * (latencies[5] - latencies[4]), 6)
    assert criteria["lookup_success"]["value"] == round(4 / 6, 6)
    assert (stats["user_lookups"], stats["find_peers"], stats["find_providers"], stats["provides"]) == (6, 1, 1, 1)
    assert (stats["find_peer_success"], stats["find_providers_success"], stats["provide_success"]) == (1, 0, 1)
    assert stats["user_lookup_rpcs_mean"] == round((4 + 4 + 5 + 5 + 3 + 30) / 6, 6)
    assert stats["lookup_latency_p99"] == 0.991  # FIND_NODE convergence, as before
    # without a user-facing lookup, the FIND_NODE lookups are judged
    no_gets = [row for row in ROWS if ",get," not in row and ",put," not in row]
    scenario = {**SCENARIO, "workload": {"lookup": 1.0, "put": 0, "get": 0}}
    criteria = by_name(summarise(load_run(write_run(tmp_path / "find_node", no_gets, scenario))))
    assert criteria["lookup_p99"]["value"] == 0.991  # p99 of 0.1..1.0: 0.9 + 0.91 * 0.1
    assert criteria["lookup_success"]["value"] == 0.8


def test_statistics_against_hand_computed_values(tmp_path):
    stats = summarise(load_run(write_run(tmp_path / "run")))["stats"]
    assert stats["lookups"] == 10
    assert stats["lookup_latency_p50"] == 0.55
    assert stats["lookup_latency_p90"] == 0.91  # rank 8.1 -> 0.9 + 0.1 * 0.1
    assert stats["lookup_latency_mean"] == 0.55
    assert stats["lookup_hops_mean"] == 3.2  # (1+2+2+3+3+3+4+4+5+5) / 10
    assert stats["lookup_hops_p50"] == 3.0
    assert stats["lookup_rpcs_mean"] == 9.5  # 5..14
    assert stats["lookup_precision_mean"] == 0.86  # 8.6 / 10
    assert (stats["puts"], stats["put_success"], stats["put_replicas_mean"]) == (2, 0.5, 1.5)
    assert (stats["gets"], stats["get_success"]) == (4, 0.75)
    assert stats["get_latency_p50"] == 0.25
    assert stats["get_latency_p99"] == 0.397  # rank 2.97 -> 0.3 + 0.97 * 0.1
    assert (stats["messages"], stats["bytes"]) == (50, 5000)
    assert (stats["churn_departures"], stats["churn_crashes"], stats["churn_rejoins"]) == (3, 2, 1)
    assert (stats["live_nodes_min"], stats["live_nodes_mean"], stats["live_nodes_max"]) == (8, 9.0, 10)


def test_formation_never_reached_fails_with_no_value(tmp_path):
    rows = [row for row in ROWS if not row.startswith("3.000000,formation")]
    criteria = by_name(summarise(load_run(write_run(tmp_path / "run", rows))))
    assert criteria["formation_time"]["value"] is None
    assert criteria["formation_time"]["pass"] is False


def test_formation_uses_simulated_time_not_file_order(tmp_path):
    # the lookup check's row is written when the check ends but carries the time it started
    rows = [*ROWS, "2.500000,formation,,,,1,1.000000,8"]
    run = load_run(write_run(tmp_path / "run", rows))
    assert by_name(summarise(run))["formation_time"]["value"] == 2.5
    assert run.events["time"].is_monotonic_increasing


def test_only_listed_criteria_are_judged(tmp_path):
    scenario = {**SCENARIO, "criteria": {"lookup_p99": {"target": 1.5}, "lookup_success": {}}}
    criteria = by_name(summarise(load_run(write_run(tmp_path / "run", scenario=scenario))))
    assert list(criteria) == ["lookup_p99", "lookup_success"]
    assert (criteria["lookup_p99"]["target"], criteria["lookup_p99"]["pass"]) == (1.5, True)
    assert criteria["lookup_success"]["target"] == 0.99


# --- reports ---------------------------------------------------------------------------------------------


def test_summary_json_is_byte_identical_and_has_no_wall_clock(tmp_path):
    path = write_run(tmp_path / "run")
    write_report(path)
    first = (path / "summary.json").read_bytes()
    write_report(path)
    assert (path / "summary.json").read_bytes() == first
    assert first.endswith(b"}\n")
    text = first.decode()
    assert "wall" not in text and "started_at" not in text and "NaN" not in text
    assert list(json.loads(text)) == ["scenario", "seed", "nodes", "runtime", "simulated_seconds",
                                      "criteria", "stats", "damage"]  # the fixture's row of an unknown kind


def test_report_files_and_plots(tmp_path):
    path = write_run(tmp_path / "run")
    summary, paths = write_report(path)
    names = {p.name for p in paths}
    assert {"summary.json", "report.md", "report.html", "lookup_latency_cdf.png", "lookup_success.png",
            "get_success.png", "live_nodes.png", "formation.png"} <= names
    for p in paths:
        assert p.exists() and p.stat().st_size > 0
        assert p.parent == path
    assert (path / "lookup_latency_cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (path / "report.html").read_text()
    assert page.index('class="verdict fail"') < page.index("Statistics") < page.index("<img")
    assert page.index("<img") < page.index("Model and definitions")
    assert '<td class="pass">PASS</td>' in page and '<td class="fail">FAIL</td>' in page
    assert 'src="lookup_latency_cdf.png"' in page and "<figcaption>" in page
    assert "all return exactly the true k closest live" in page  # formation definition
    for fact in ("Jitter: 0.1", "between 2 and 20 ms", "Loss: 0.01", "weibull (shape 0.6, scale 1800)",
                 "exponential (mean 600)", "k = 20", "alpha = 5", "d = 2"):
        assert fact in page, fact
    md = (path / "report.md").read_text()
    assert "| lookup_p99 | 397 ms | < 500 ms | PASS |" in md
    assert "![" in md and "## Model and definitions" in md


def test_plot_without_data_is_skipped(tmp_path):
    path = write_run(tmp_path / "run", rows=[r for r in ROWS if ",live," in r or ",up," in r])
    (path / "lookup_latency_cdf.png").write_bytes(b"stale")
    _, paths = write_report(path)
    assert {p.name for p in paths} == {"summary.json", "report.md", "report.html", "live_nodes.png"}
    assert not (path / "lookup_latency_cdf.png").exists()
    assert not (path / "formation.png").exists()


def test_print_verdict():
    summary = {"scenario": "tiny", "seed": 1, "nodes": 10, "criteria": [
        {"name": "lookup_success", "description": "", "value": 1.0, "target": 0.99, "op": ">=",
         "unit": "share", "pass": True}]}
    console = Console(record=True, width=100)
    print_verdict(summary, console)
    text = console.export_text()
    assert "lookup_success" in text and "100.00 %" in text and ">= 99.00 %" in text
    assert "PASS: 1 of 1 criteria met" in text


# --- comparison, sweeps ----------------------------------------------------------------------------------


def test_compare_two_runs(tmp_path):
    a = write_run(tmp_path / "v1")
    better = [row.replace("24.000000,get,6,0.300000,3,0,,5", "24.000000,get,6,0.250000,3,1,,5") for row in ROWS]
    b = write_run(tmp_path / "v2", better)
    summaries, _fidelity, paths = compare_runs(a, b, tmp_path / "cmp")
    assert [p.name for p in paths] == ["report.md", "report.html", "fidelity.json", "compare_lookup_cdf.png"]
    assert by_name(summaries[0])["lookup_success"]["value"] == 0.75  # the gets: 3 of 4, then 4 of 4
    assert by_name(summaries[1])["lookup_success"]["value"] == 1.0
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert "| lookup_success | >= 99.00 % | 75.00 % | FAIL | 100.00 % | PASS |" in md
    assert "| FIND_NODE lookups | 10 | 10 | +0 |" in md
    assert "compare_lookup_cdf.png" in (tmp_path / "cmp" / "report.html").read_text()


def test_sweep_scaling_ratio(tmp_path):
    sweep = tmp_path / "scale"
    sweep.mkdir()
    # 2 s / 1000 messages = 2 ms per message; 6 s / 2000 messages = 3 ms per message: ratio 1.5
    write_run(sweep / "n10", nodes=10, perf={"wall_seconds": 2.0, "messages": 1000, "peak_rss_mb": 50.0,
                                             "messages_per_wall_second": 500.0})
    slower = [row.replace("25.000000,get,7,0.400000", "25.000000,get,7,2.000000") for row in ROWS]
    write_run(sweep / "n20", slower, nodes=20, perf={"wall_seconds": 6.0, "messages": 2000,
                                                     "peak_rss_mb": 60.0, "messages_per_wall_second": 333.3})
    scenario = {**SCENARIO, "criteria": {"scaling": {"target": 1.5}, "lookup_p99": {"target": 2.0}},
                "sweep": {"nodes": [10, 20]}}
    manifest = {"scenario": scenario, "seed": 7, "nodes": 10, "runtime": "sim",
                "sweep": [{"nodes": 20, "dir": "n20"}, {"nodes": 10, "dir": "n10"}]}
    (sweep / "manifest.json").write_text(json.dumps(manifest))
    summary, paths = write_report(sweep)
    criteria = by_name(summary)
    assert list(criteria) == ["scaling", "lookup_p99"]
    scaling = criteria["scaling"]
    assert (scaling["value"], scaling["target"], scaling["op"], scaling["pass"]) == (1.5, 1.5, "<=", True)
    # worst point: n20's gets 0.1, 0.2, 0.3, 2.0 -> p99 = 0.3 + 0.97 * 1.7 = 1.949 (n10: 0.397)
    assert (criteria["lookup_p99"]["value"], criteria["lookup_p99"]["pass"]) == (1.949, True)
    assert [p["nodes"] for p in summary["points"]] == [10, 20]
    assert [p["us_per_message"] for p in summary["points"]] == [2000.0, 3000.0]
    assert [p["lookup_p99"] for p in summary["points"]] == [0.397, 1.949]
    assert {"scaling.png", "sweep_lookup_cdf.png"} <= {p.name for p in paths}
    assert (sweep / "n10" / "report.html").exists() and (sweep / "n20" / "summary.json").exists()
    page = (sweep / "report.html").read_text()
    assert 'href="n10/report.html"' in page and 'href="n20/report.html"' in page
    assert "<td class=\"num\">3,000 µs</td>" in page
    with pytest.raises(AnalysisError, match="is a sweep"):
        compare_runs(sweep, sweep / "n10", tmp_path / "cmp")


def test_sweep_with_a_missing_point_has_no_scaling(tmp_path):
    sweep = tmp_path / "scale"
    sweep.mkdir()
    write_run(sweep / "n10")
    manifest = {"scenario": SCENARIO, "seed": 7, "runtime": "sim",
                "sweep": [{"nodes": 10, "dir": "n10"}, {"nodes": 20, "dir": "n20"}]}
    (sweep / "manifest.json").write_text(json.dumps(manifest))
    summary, _ = write_report(sweep)
    assert summary["missing_points"] == ["n20"]
    assert (by_name(summary)["scaling"]["value"], by_name(summary)["scaling"]["pass"]) == (None, False)
    assert "n20" in (sweep / "report.md").read_text()


# --- CLI -------------------------------------------------------------------------------------------------


def test_cli_missing_dir(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"report: {tmp_path / 'nope'}: no such directory\n"
    assert "Traceback" not in captured.err


def test_cli_usage_errors(tmp_path, capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("report: ") and err.count("\n") == 1
    assert main([str(write_run(tmp_path / "run")), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == "report: --out is only for comparing two directories\n"


def test_cli_report_and_compare(tmp_path, capsys):
    a, b = write_run(tmp_path / "a"), write_run(tmp_path / "b")
    assert main([str(a)]) == 0
    out = capsys.readouterr().out
    assert "lookup_p99" in out and "FAIL: 3 of 4 criteria met" in out and "report.html" in out
    assert (a / "report.html").exists()
    assert main([str(a), str(b)]) == 0
    assert "comparison" in capsys.readouterr().out
    assert (a / "compare-b" / "report.html").exists()
    assert main([str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "compare_lookup_cdf.png").exists()


def test_a_saturated_emulation_host_is_called_out(tmp_path):
    """Real nodes that waited for a CPU show it in their latencies: the report says when that happened."""
    busy = {"wall_seconds": 90.0, "emulated_seconds": 45, "host_cpus": 2, "host_cpu_busy_percent": 81.5,
            "host_cpu_saturated_at_percent": 95.0, "host_cpu_saturated_seconds": 12.0,
            "host_cpu_saturated_last_at": 21.0}
    write_report(write_run(tmp_path / "busy", perf=busy))
    text = (tmp_path / "busy" / "report.md").read_text()
    assert "saturated (at least 95.0 % busy) for 12 s of the run, the last time at 21.0 s" in text
    calm = {**busy, "host_cpu_saturated_seconds": 0.0, "host_cpu_saturated_last_at": None}
    write_report(write_run(tmp_path / "calm", perf=calm))
    assert "CPUs were saturated" not in (tmp_path / "calm" / "report.md").read_text()


def test_report_names_the_time_by_the_runtime(tmp_path):
    sim = write_run(tmp_path / "sim")
    emu = write_run(tmp_path / "emu", runtime="emulation")
    write_report(sim)
    write_report(emu)
    sim_md, emu_md = ((path / "report.md").read_text() for path in (sim, emu))
    assert "Simulated time covered by events: 40 s." in sim_md
    assert "Emulated time covered by events (real seconds since the scenario started): 40 s." in emu_md
    assert "per emulated minute" in emu_md and "Live nodes over emulated time" in emu_md
    assert "simulated" not in emu_md.lower()
    formation = by_name(json.loads((emu / "summary.json").read_text()))["formation_time"]
    assert formation["description"].startswith("Emulated seconds from t=0")


# --- damaged results (issue 14): said in the report and on stderr, or exit 2 where nothing usable remains ----------


def test_damaged_results_are_warned_about_in_report_and_stderr(tmp_path, capsys):
    from analysis.cli import main as report

    rows = [r for r in ROWS if "gossip" not in r] + [
        "26.000000,lookup,2,-0.5,1,1,1.000000,5",   # a negative latency
        "27.000000,lookup,3,inf,1,1,1.000000,5",    # an infinite one
        "28.000000,lookup,4,abc,1,1,1.000000,5",    # not a number
        "-1.000000,get,4,0.1,2,1,,4",                # before the run began
        "29.000000,teleport,1,,,,,",                 # a kind no runtime writes
    ]
    path = write_run(tmp_path / "run", rows=rows, tail="30.0,lookup,5,0.")
    clean = summarise(load_run(write_run(tmp_path / "clean", rows=[r for r in ROWS if "gossip" not in r])))
    assert report([str(path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"report: warning: {path}: events.csv ended with an incomplete line (the run stopped mid-write); it was "
        "ignored",
        f"report: warning: {path}: events.csv: 1 row(s) of unknown kinds ignored (line 37: 'teleport')",
        f"report: warning: {path}: events.csv: 4 row(s) with values that are not numbers or impossible ignored "
        "(line 33: column latency: -0.5 is impossible)",
    ]
    summary = json.loads((path / "summary.json").read_text())
    assert summary["criteria"] == clean["criteria"]  # the damaged rows are left out, not reported
    assert len(summary["damage"]) == 3
    assert "Damaged results: events.csv: 4 row(s)" in (path / "report.md").read_text()


def test_a_manifest_without_a_scenario_is_said(tmp_path, capsys):
    from analysis.cli import main as report

    path = write_run(tmp_path / "run", rows=[r for r in ROWS if "gossip" not in r])
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["scenario"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert report([str(path)]) == 0
    assert capsys.readouterr().err.strip() == (
        f"report: warning: {path}: manifest.json has no scenario: the default criteria are judged and the run's "
        "settings are unknown")


def test_nothing_usable_is_exit_2(tmp_path, capsys):
    from analysis.cli import main as report

    path = write_run(tmp_path / "run", rows=["1.0,lookup,1,-1,1,1,1,5", "2.0,lookup,1,nan,1,1,1,5x"])
    assert report([str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"report: {path / 'events.csv'}: nothing usable: events.csv: 2 row(s)")
