"""Pub-sub delivery in the analysis: criteria, statistics, plots and reports from hand-written GossipSub rows.

The rows follow docs/results.md: `publish`, `deliver`, `delivery` (written once a message's deadline has
passed, so out of time order in the file), and the cumulative `ps_data`, `ps_control`, `ps_recv` and `mesh`
samples.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from test_report import ROWS, SCENARIO, by_name, write_run  # noqa: E402

from analysis.cli import print_comparison, print_verdict  # noqa: E402
from analysis.compare import compare_runs  # noqa: E402
from analysis.criteria import default_criteria  # noqa: E402
from analysis.load import load_run  # noqa: E402
from analysis.report import write_report  # noqa: E402
from analysis.summary import summarise  # noqa: E402

# 3 messages; 4 eligible subscribers each; message 1 misses node 4: delivery rate 11/12.
# deliver rows with ok == 1: 0.1 0.12 0.15 0.2 0.22 0.25 0.3 0.32 0.35 0.4 2.0 (p50 0.25, p99 1.84, max 2.0);
# node 5's reception of message 1 (ok 0: it joined less than delivery_settle before the publish) is left out.
PUBSUB_ROWS = [
    "0.000000,up,0,,,,1,",
    "0.000000,up,1,,,,1,",
    "95.000000,up,5,,,,1,",
    "100.000000,live,,,,,6,",
    "100.000000,publish,0,,,,0,1024",
    "100.100000,deliver,1,0.100000,,1,0,",
    "100.200000,deliver,2,0.200000,,1,0,",
    "100.300000,deliver,3,0.300000,,1,0,",
    "100.400000,deliver,4,0.400000,,1,0,",
    "110.000000,publish,1,,,,1,1024",
    "110.150000,deliver,0,0.150000,,1,1,",
    "110.250000,deliver,2,0.250000,,1,1,",
    "110.350000,deliver,3,0.350000,,1,1,",
    "110.500000,deliver,5,0.500000,,0,1,",
    "120.000000,publish,2,,,,2,1024",
    "120.120000,deliver,0,0.120000,,1,2,",
    "120.220000,deliver,1,0.220000,,1,2,",
    "120.320000,deliver,3,0.320000,,1,2,",
    "122.000000,deliver,4,2.000000,,1,2,",
    "125.000000,live,,,,,5,",
    "130.000000,ps_data,,,,,20000,20",
    "130.000000,ps_control,,,,,5000,100",
    "130.000000,ps_recv,,,,,8,20",
    "130.000000,mesh,,,,,5.500000,1",
    "130.000000,delivery,0,,,1,4,4",  # message 0's deadline (t=130) has passed
    "140.000000,delivery,1,,,0,3,4",
    "150.000000,ps_data,,,,,30000,30",
    "150.000000,ps_control,,,,,10000,200",
    "150.000000,ps_recv,,,,,12,42",
    "150.000000,mesh,,,,,5.800000,0",
    "150.000000,delivery,2,,,1,4,4",
    "150.000000,live,,,,,6,",
    "160.000000,mesh,,,,,1.000000,5",  # the drain after warmup + duration: idle meshes thin; not "the end"
]


def _in_file_order(rows: list[str]) -> list[str]:
    """As the simulator writes them: a delivery row carries its publish time but comes at the deadline."""
    publish_time = {"0": "100.000000", "1": "110.000000", "2": "120.000000"}
    out = []
    for row in rows:
        fields = row.split(",")
        if fields[1] == "delivery":
            fields[0] = publish_time[fields[2]]
        out.append(",".join(fields))
    return out


FILE_ROWS = _in_file_order(PUBSUB_ROWS)

PUBSUB_SCENARIO = {
    **{key: value for key, value in SCENARIO.items() if key != "criteria"},
    "name": "gossip",
    "warmup": 90,
    "duration": 60,  # measured until t=150
    "workload": {"lookup": 0.0, "put": 0.0, "get": 0.0, "value_size": 256},
    "pubsub": {"topics": 1, "rate": 1.0, "message_size": 1024, "scoring": True, "attackers": 0.1,
               "router": {"d": 6, "d_lo": 4, "d_hi": 12, "d_lazy": 6, "heartbeat_interval": 1.0}},
    "measure": {"sample_interval": 1.0, "formation_sample": 200, "delivery_settle": 10.0,
                "delivery_deadline": 30.0},
    "criteria": None,
}


def write_pubsub_run(path: Path, rows: list[str] = FILE_ROWS, scenario: dict | None = None, **kwargs) -> Path:
    return write_run(path, rows, scenario=scenario or PUBSUB_SCENARIO, nodes=6, **kwargs)


# --- criteria and statistics -----------------------------------------------------------------------------


def test_delivery_criteria_against_hand_computed_values(tmp_path):
    summary = summarise(load_run(write_pubsub_run(tmp_path / "run")))
    criteria = by_name(summary)
    # no criteria section, no DHT workload, a pubsub section: only the delivery criteria are judged
    assert list(criteria) == ["delivery_rate", "delivery_p99"]
    rate = criteria["delivery_rate"]
    assert (rate["value"], rate["target"], rate["op"], rate["unit"], rate["pass"]) == (
        round(11 / 12, 6), 0.999, ">=", "share", False)
    assert "up continuously from `measure.delivery_settle` s before the publish" in rate["description"]
    assert "not an attacker" in rate["description"] and "not the publisher" in rate["description"]
    p99 = criteria["delivery_p99"]
    # rank 0.99 * 10 = 9.9 -> 0.4 + 0.9 * (2.0 - 0.4) = 1.84
    assert (p99["value"], p99["target"], p99["op"], p99["unit"], p99["pass"]) == (1.84, 1.0, "<", "s", False)
    assert "ok == 1" in p99["description"]


def test_pubsub_statistics(tmp_path):
    summary = summarise(load_run(write_pubsub_run(tmp_path / "run")))
    assert list(summary) == ["scenario", "seed", "nodes", "runtime", "simulated_seconds", "criteria", "stats",
                             "pubsub"]
    stats = summary["pubsub"]
    assert stats == {
        "messages_published": 3,
        "messages_judged": 3,
        "delivery_rate": round(11 / 12, 6),
        "messages_fully_delivered": round(2 / 3, 6),
        "delivery_latency_p50": 0.25,  # 0.275 if node 5's ok == 0 reception were counted
        "delivery_latency_p99": 1.84,
        "delivery_latency_max": 2.0,
        "duplicates_per_delivery": 2.5,  # (42 copies - 12 first receptions) / 12
        "data_bytes": 30000,
        "control_bytes": 10000,
        "control_share": 0.25,  # 10000 / (30000 + 10000)
        "control_bytes_per_delivery": round(10000 / 12, 6),
        "mesh_degree_end": 5.8,
        "mesh_below_d_lo_end": 0,
        "scoring": True,
        "attacker_share": 0.1,
    }
    assert summary["stats"]["lookups"] == 0  # the DHT statistics stay as they were


def test_out_of_order_delivery_rows(tmp_path):
    in_time_order = summarise(load_run(write_pubsub_run(tmp_path / "sorted", PUBSUB_ROWS)))
    run = load_run(write_pubsub_run(tmp_path / "as-written"))
    assert run.events["time"].is_monotonic_increasing
    assert sorted(run.of_kind("delivery")["time"]) == [100.0, 110.0, 120.0]
    as_written = summarise(run)
    assert as_written["criteria"] == in_time_order["criteria"]
    assert as_written["pubsub"] == in_time_order["pubsub"]


def test_no_eligible_subscribers_means_no_rate(tmp_path):
    rows = [row for row in FILE_ROWS if ",delivery," not in row] + ["100.000000,delivery,0,,,1,0,0"]
    criteria = by_name(summarise(load_run(write_pubsub_run(tmp_path / "run", rows))))
    assert (criteria["delivery_rate"]["value"], criteria["delivery_rate"]["pass"]) == (None, False)


def test_default_criteria():
    dht_only = {key: value for key, value in SCENARIO.items() if key != "criteria"}
    assert default_criteria(dht_only) == ("lookup_p99", "lookup_success", "put_get_success")
    # a resolved scenario without pub-sub has `pubsub: null`; a missing workload means the default rates
    assert default_criteria({**dht_only, "pubsub": None}) == default_criteria(dht_only)
    assert default_criteria({"name": "x"}) == ("lookup_p99", "lookup_success", "put_get_success")
    assert default_criteria({**dht_only, "workload": {"lookup": 1.0, "put": 0.0, "get": 0.5}}) == (
        "lookup_p99", "lookup_success")
    assert default_criteria(PUBSUB_SCENARIO) == ("delivery_rate", "delivery_p99")
    assert default_criteria({**PUBSUB_SCENARIO, "workload": SCENARIO["workload"]}) == (
        "lookup_p99", "lookup_success", "put_get_success", "delivery_rate", "delivery_p99")


def test_listed_delivery_criteria_and_targets(tmp_path):
    scenario = {**PUBSUB_SCENARIO, "criteria": {"delivery_rate": {"target": 0.9}, "delivery_p99": {"target": 2}}}
    criteria = by_name(summarise(load_run(write_pubsub_run(tmp_path / "run", scenario=scenario))))
    assert [(c["name"], c["target"], c["pass"]) for c in criteria.values()] == [
        ("delivery_rate", 0.9, True), ("delivery_p99", 2.0, True)]


# --- reports ---------------------------------------------------------------------------------------------


def test_run_without_pubsub_has_no_delivery_section(tmp_path):
    path = write_run(tmp_path / "run", ROWS)
    summary, paths = write_report(path)
    assert "pubsub" not in summary
    assert [c["name"] for c in summary["criteria"]] == [
        "formation_time", "lookup_p99", "lookup_success", "put_get_success"]
    assert not {"delivery_latency_cdf.png", "delivery_rate.png", "mesh_degree.png"} & {p.name for p in paths}
    md = (path / "report.md").read_text()
    assert "Pub-sub" not in md and "delivery" not in md


def test_delivery_section_and_plots(tmp_path):
    path = write_pubsub_run(tmp_path / "run")
    summary, paths = write_report(path)
    names = [p.name for p in paths]
    assert {"delivery_latency_cdf.png", "delivery_rate.png", "mesh_degree.png", "live_nodes.png"} <= set(names)
    for name in ("delivery_latency_cdf.png", "delivery_rate.png", "mesh_degree.png"):
        assert (path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lookup_latency_cdf.png" not in names  # no lookups in this run
    md = (path / "report.md").read_text()
    assert "| delivery_rate | 91.67 % | >= 99.90 % | FAIL |" in md
    assert "| delivery_p99 | 1.84 s | < 1 s | FAIL |" in md
    section = md[md.index("## Pub-sub delivery"):md.index("## Plots")]
    for fact in ("| messages published | 3 |", "| delivery latency p50 | 250 ms |",
                 "| duplicate copies per delivered message | 2.5 |", "| control share of pub-sub bytes | 25.00 % |",
                 "| control bytes per delivered message | 833 B |", "| mean mesh degree at the end | 5.8 |",
                 "| peer scoring | on |", "| attacker share of the nodes | 10.00 % |",
                 "`delivery_settle` is 10 s and `delivery_deadline` is 30 s",
                 "attacker node (`pubsub.attackers`) and the publisher itself do not count",
                 "(delivery_latency_cdf.png)", "(delivery_rate.png)", "(mesh_degree.png)"):
        assert fact in section, fact
    assert "delivery_rate.png" not in md[md.index("## Plots"):]
    page = (path / "report.html").read_text()
    assert page.index("Pub-sub delivery") < page.index('src="delivery_rate.png"') < page.index("<h2>Plots")
    assert "Pub-sub (GossipSub): topics 1, rate 1, message_size 1024; router d 6, d_lo 4" in page
    assert "peer scoring on; attackers 10.00 % of the nodes" in page
    first = (path / "summary.json").read_bytes()
    write_report(path)
    assert (path / "summary.json").read_bytes() == first


def test_delivery_plots_need_their_rows(tmp_path):
    rows = [row for row in FILE_ROWS if ",mesh," not in row and ",delivery," not in row]
    _, paths = write_report(write_pubsub_run(tmp_path / "run", rows))
    names = {p.name for p in paths}
    assert "delivery_latency_cdf.png" in names
    assert not {"delivery_rate.png", "mesh_degree.png"} & names


def test_compare_includes_delivery(tmp_path):
    a = write_pubsub_run(tmp_path / "off", scenario={**PUBSUB_SCENARIO, "pubsub": {
        **PUBSUB_SCENARIO["pubsub"], "scoring": False}})
    complete = [row.replace("delivery,1,,,0,3,4", "delivery,1,,,1,4,4") for row in FILE_ROWS]
    b = write_pubsub_run(tmp_path / "on", complete)
    summaries, _fidelity, paths = compare_runs(a, b, tmp_path / "cmp")
    assert [p.name for p in paths] == ["report.md", "report.html", "fidelity.json", "compare_delivery_cdf.png"]
    assert by_name(summaries[1])["delivery_rate"]["value"] == 1.0
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert "| delivery_rate | >= 99.90 % | 91.67 % | FAIL | 100.00 % | PASS |" in md
    assert "| delivery rate (eligible subscribers reached within the deadline) | 91.67 % | 100.00 % | +8.33 pp |" \
        in md
    assert "| peer scoring | off | on | — |" in md
    console = Console(record=True, width=200)
    print_comparison(summaries, ["off", "on"], console)
    text = console.export_text()
    assert "pub-sub delivery" in text and "91.67 %" in text and "100.00 %" in text


# --- sweeps ----------------------------------------------------------------------------------------------


def _sweep(tmp_path: Path, nodes: list[int], sweep: dict) -> Path:
    """A sweep with a scoring-off point (message 1 misses node 4) and a scoring-on point (all delivered)
    per node count; wall time per message 2 ms + 1 ms per extra node count, doubled with scoring."""
    directory = tmp_path / "sweep"
    directory.mkdir()
    complete = [row.replace("delivery,1,,,0,3,4", "delivery,1,,,1,4,4") for row in FILE_ROWS]
    entries = []
    for i, n in enumerate(nodes):
        for scoring in (True, False):  # listed on before off: the loader orders them off, on
            name = f"n{n}-scoring-{'on' if scoring else 'off'}"
            wall = (2.0 + i) * (2 if scoring else 1)
            perf = {"wall_seconds": wall, "messages": 1000, "peak_rss_mb": 50.0}
            scenario = {**PUBSUB_SCENARIO, "pubsub": {**PUBSUB_SCENARIO["pubsub"], "scoring": scoring}}
            write_run(directory / name, complete if scoring else FILE_ROWS, scenario=scenario, nodes=n, perf=perf)
            label = f"gossip [{n}, scoring {'on' if scoring else 'off'}]"
            entries.append({"nodes": n, "scoring": scoring, "label": label, "dir": name, "perf": perf})
    manifest = {"scenario": {**PUBSUB_SCENARIO, "sweep": sweep}, "seed": 7, "runtime": "sim", "sweep": entries}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_scoring_sweep(tmp_path):
    directory = _sweep(tmp_path, [6], {"nodes": None, "scoring": [True, False]})
    summary, paths = write_report(directory)
    criteria = by_name(summary)
    assert list(criteria) == ["delivery_rate", "delivery_p99"]  # one node count: scaling is not judged
    assert criteria["delivery_rate"]["value"] == round(11 / 12, 6)  # the worst point (scoring off)
    assert criteria["delivery_rate"]["description"].startswith("Worst over the sweep points.")
    points = summary["points"]
    assert [(p["label"], p["nodes"], p["scoring"]) for p in points] == [
        ("gossip [6, scoring off]", 6, False), ("gossip [6, scoring on]", 6, True)]
    assert [p["pubsub"]["delivery_rate"] for p in points] == [round(11 / 12, 6), 1.0]
    assert [[(c["name"], c["pass"]) for c in p["criteria"]] for p in points] == [
        [("delivery_rate", False), ("delivery_p99", False)], [("delivery_rate", True), ("delivery_p99", False)]]
    assert summary["nodes"] == [6, 6]
    names = {p.name for p in paths}
    assert "sweep_delivery_cdf.png" in names and "scaling.png" not in names
    assert (directory / "n6-scoring-off" / "delivery_rate.png").exists()
    md = (directory / "report.md").read_text()
    assert md.startswith("# Sweep report — gossip: seed 7, 6 nodes, sim")
    section = md[md.index("## Pub-sub delivery per point"):]
    assert "| gossip [6, scoring off] | 6 | off | 10.00 % | 3 | 91.67 % | FAIL | 1.84 s | FAIL | 250 ms |" in section
    assert "| gossip [6, scoring on] | 6 | on | 10.00 % | 3 | 100.00 % | PASS | 1.84 s | FAIL | 250 ms |" in section
    assert "[gossip [6, scoring on]: n6-scoring-on/report.html](n6-scoring-on/report.html)" in md
    assert "`scaling` (<= 1.5, not judged: the sweep has fewer than two node counts)" in md
    console = Console(record=True, width=200)
    print_verdict(summary, console)
    text = console.export_text()
    assert "n6-scoring-off" in text and "delivery rate" in text and "91.67 %" in text and "lookup p99" not in text


def test_sweep_over_nodes_and_scoring_keeps_scaling_per_setting(tmp_path):
    directory = _sweep(tmp_path, [6, 12], {"nodes": [6, 12], "scoring": [True, False]})
    summary, paths = write_report(directory)
    assert [(p["nodes"], p["scoring"]) for p in summary["points"]] == [(6, False), (6, True), (12, False),
                                                                        (12, True)]
    scaling = by_name(summary)["scaling"]
    # scoring off at 6 nodes: 2 ms per message; at 12 nodes: 3 ms (scoring on, 8 ms, is not compared)
    assert (scaling["value"], scaling["pass"]) == (1.5, True)
    assert "scaling.png" in {p.name for p in paths}
