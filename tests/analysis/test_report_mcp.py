"""The report's MCP section against hand-computed figures, from rows as experiment/mcp.py writes them."""

from __future__ import annotations

import json

from analysis.report import write_report
from tests.analysis.test_report import ROWS, SCENARIO, write_run

# forward_to_peer calls (count empty): latency, attempts, ok, failovers; aggregate_results: peers asked, answers
MCP_ROWS = [
    "50.000000,mcp,1,0.100000,1,1,0,",
    "51.000000,mcp,2,0.200000,1,1,0,",
    "52.000000,mcp,3,0.300000,2,1,1,",
    "53.000000,mcp,4,1.500000,1,1,0,",
    "53.000000,mcp_discovery,4,1.200000,,1,,",
    "54.000000,mcp,5,0.400000,3,0,2,",
    "55.000000,mcp,6,0.800000,3,1,0,2",
    "56.000000,mcp,7,0.500000,3,1,0,3",
]


def test_mcp_section_statistics_and_cdf(tmp_path):
    scenario = {**SCENARIO, "mcp": {"providers": 0.3, "rate": 2.0},
                "criteria": {**SCENARIO["criteria"], "mcp_request_p99": {}, "mcp_success": {}}}
    path = write_run(tmp_path / "run", rows=ROWS + MCP_ROWS, scenario=scenario)
    summary, paths = write_report(path)
    mcp = summary["mcp"]
    assert mcp["mcp_requests"] == 7 and abs(mcp["mcp_success"] - 6 / 7) < 1e-6
    assert mcp["mcp_latency_p50"] == 0.4 and mcp["mcp_latency_max"] == 1.5
    assert mcp["mcp_forwards"] == 5 and mcp["mcp_aggregates"] == 2
    assert abs(mcp["mcp_attempts_mean"] - 8 / 5) < 1e-6
    assert mcp["mcp_failovers"] == 3 and abs(mcp["mcp_with_failover"] - 2 / 7) < 1e-6
    assert mcp["mcp_partial"] == 0.5  # 2 of 3 answered, then 3 of 3
    assert abs(mcp["mcp_discovery_waits"] - 1 / 7) < 1e-6 and mcp["mcp_discovery_p99"] == 1.2
    criteria = {c["name"]: c for c in summary["criteria"]}
    assert abs(criteria["mcp_request_p99"]["value"] - mcp["mcp_latency_p99"]) < 1e-6
    assert not criteria["mcp_success"]["pass"]
    assert "mcp_latency_cdf.png" in {p.name for p in paths}
    md = (path / "report.md").read_text()
    section = md[md.index("## MCP requests"):md.index("## Plots")]
    assert "| calls with a failover | 28.57 % |" in section and "![mcp cdf](mcp_latency_cdf.png)" in section
    assert "mcp_latency_cdf.png" not in md[md.index("## Plots"):]
    assert json.loads((path / "summary.json").read_text())["mcp"] == mcp


def test_no_mcp_section_without_mcp_rows(tmp_path):
    summary, paths = write_report(write_run(tmp_path / "run"))
    assert "mcp" not in summary and "mcp_latency_cdf.png" not in {p.name for p in paths}
    assert "## MCP requests" not in (tmp_path / "run" / "report.md").read_text()


def test_two_runs_compare_their_mcp_latency_and_success(tmp_path):
    from analysis.compare import compare_runs

    scenario = {**SCENARIO, "mcp": {"providers": 0.3, "rate": 2.0}}
    first = write_run(tmp_path / "sim", rows=ROWS + MCP_ROWS, scenario=scenario)
    slower = [r.replace(",0.", ",1.", 1) if ",mcp," in r else r for r in MCP_ROWS]  # every call 1 s slower
    second = write_run(tmp_path / "emu", rows=ROWS + slower, scenario=scenario, runtime="emulation")
    compare_runs(first, second, tmp_path / "cmp")
    fidelity = json.loads((tmp_path / "cmp" / "fidelity.json").read_text())
    figures = {f["name"]: f for f in fidelity["figures"]}
    assert figures["mcp_request_latency_ks"]["a"] == 7 and not figures["mcp_request_latency_ks"]["agrees"]
    assert figures["mcp_success"]["value"] == 0 and figures["mcp_success"]["agrees"]
    assert (tmp_path / "cmp" / "compare_mcp_cdf.png").exists()
    assert "## MCP requests" in (tmp_path / "cmp" / "report.md").read_text()
