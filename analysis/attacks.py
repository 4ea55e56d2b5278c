"""The attack section of a sweep report: lookup and get success against the malicious share, one curve per
number of disjoint paths d, beside S/Kademlia's evaluation (Baumgart & Mies 2007, section 5).

The paper's setup: OverSim, a static network of N = 10,000 nodes, fully stabilised before N lookups of node
IDs; bucket size k = 16 (its Figure 4; Figure 5 uses k = 2d), s = 16 siblings, alpha = 1 per path,
d in {1, 2, 4, 8}; the adversarial share grows in steps of 5 % up to 90 %. Its adversary answers FIND_NODE only
with colluding nodes and maps harvested IDs to false addresses, and a lookup counts as successful only if one
of its d paths met no adversarial node at all. Its numbers: "even with 20 % of adversarial nodes still 99 % of
all lookups are successful if disjoint paths are used" (section 7); d = 1 is plain Kademlia, and d = 4..8 with
k = 8..16 is its recommendation. The figure's other values are not in its text and are not reproduced here.

Beside our measured curves the report draws that rule applied to our own hop counts, 1 - (1 - (1 - f)^h)^d
for malicious share f and mean hops h of the point's lookups: what the paper's assumption would predict for
our network, against what the real lookups did.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.load import Run, setting
from analysis.render import Doc
from analysis.stats import mean, percentile, share_ok

PNG = "attack_success.png"
PAPER = {"share": 0.2, "success": 0.99, "nodes": 10_000, "k": 16}


def attack_points(sweep: Run) -> pd.DataFrame:
    """One row per sweep point with an adversary: share, behaviours, d, lookups and gets and how they fared."""
    rows = []
    for point in sweep.points:
        adversary = point.scenario.get("adversary")
        if not isinstance(adversary, dict):
            continue
        lookups, gets, puts = point.of_kind("lookup"), point.of_kind("get"), point.of_kind("put")
        held = point.of_kind("records")
        rows.append({
            "dir": point.path.name,
            "share": setting(adversary, "share"),
            "behaviours": ", ".join(setting(adversary, "behaviours") or []),
            "eclipse": isinstance(adversary.get("eclipse"), dict),
            "d": setting(point.scenario.get("dht"), "disjoint_paths"),
            "puzzle": setting(point.scenario.get("security"), "puzzle_static") or 0,
            "k": setting(point.scenario.get("dht"), "k"),
            "lookups": len(lookups),
            "lookup_success": share_ok(lookups),
            "lookup_p50": percentile(lookups["latency"], 50),
            "lookup_p99": percentile(lookups["latency"], 99),
            "hops": mean(lookups["hops"]),
            "requests": mean(lookups["count"]),
            "gets": len(gets),
            "get_success": share_ok(gets),
            "get_p99": percentile(gets["latency"], 99),
            "put_success": share_ok(puts),
            "writes": setting(adversary, "writes"),
            "records_mean": float(held["value"].iloc[-1]) if len(held) else None,  # per honest node, at the end
            "records_max": float(held["count"].iloc[-1]) if len(held) else None,
        })
    return pd.DataFrame(rows)


def paper_rule(share: float, hops: float | None, d: int) -> float | None:
    """The paper's success rule: one of d paths of h hops meets no malicious node."""
    if hops is None or not d:
        return None
    return 1 - (1 - (1 - share) ** max(hops, 1.0)) ** d


def _pct(value: object) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.1%}"


def _s(value: object) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.3f} s"


def attack_section(doc: Doc, sweep: Run) -> list[Path]:
    table = attack_points(sweep)
    if table.empty:
        return []
    doc.heading("Attacks: success against the malicious share")
    first = table.iloc[0]
    doc.para(f"Malicious nodes: {first['behaviours']}" + (" with IDs placed around victim keys (eclipse)"
             if first["eclipse"] else "") + ". A lookup succeeds when it returns the closest honest live node to "
             "its key; a get when it returns the newest version put. Only honest nodes look up and get.")
    doc.table(["point", "malicious", "d", "puzzle bits", "lookups", "lookup success", "paper's rule", "p50", "p99",
               "hops", "requests", "gets", "get success"],
              [[r.dir, _pct(r.share), str(r.d), str(r.puzzle), str(r.lookups), _pct(r.lookup_success),
                _pct(paper_rule(r.share, r.hops, r.d)), _s(r.lookup_p50), _s(r.lookup_p99),
                "—" if pd.isna(r.hops) else f"{r.hops:.2f}", "—" if pd.isna(r.requests) else f"{r.requests:.1f}",
                str(r.gets), _pct(r.get_success)] for r in table.itertuples()])
    flooded = table[table["writes"].fillna(0) > 0]
    if not flooded.empty:
        doc.para(f"Write flood: {flooded.iloc[0]['writes']:g} PUT_VALUEs a second from each malicious node.")
        doc.table(["point", "malicious", "records per honest node", "most at one node", "put success",
                   "get success", "get p99"],
                  [[r.dir, _pct(r.share), "—" if pd.isna(r.records_mean) else f"{r.records_mean:,.1f}",
                    "—" if pd.isna(r.records_max) else f"{r.records_max:,.0f}", _pct(r.put_success),
                    _pct(r.get_success), _s(r.get_p99)] for r in table.itertuples()])
    doc.para(f"S/Kademlia (Baumgart & Mies 2007, section 5): N = {PAPER['nodes']:,} nodes, k = {PAPER['k']}, "
             "s = 16, alpha = 1 per path, d in {1, 2, 4, 8}, a static network, N lookups per share; a lookup "
             "counts only if one of its paths met no adversarial node. Its text gives 99 % of lookups successful "
             "at 20 % adversarial nodes with disjoint paths. 'Paper's rule' is that rule applied to this "
             "run's own mean hop count: 1 − (1 − (1 − f)^h)^d.")
    png = plot_attack(table, sweep.path / PNG, sweep.name)
    if png is None:
        return []
    doc.image(png.name, "lookup success per malicious share",
              "Lookup success (and get success) against the malicious share, one curve per d; dashed: the "
              "paper's success rule on our hop counts; the star: the paper's stated figure.")
    return [png]


def plot_attack(table: pd.DataFrame, path: Path, name: str) -> Path | None:
    if table["share"].nunique() < 2:
        return None
    figure = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(figure)
    lookups, gets = figure.subplots(1, 2)
    puzzles = table["puzzle"].nunique() > 1
    for (d, puzzle), group in table.sort_values("share").groupby(["d", "puzzle"]):
        label = f"d = {d}" + (f", puzzle {puzzle} bits" if puzzles else "")
        line, = lookups.plot(group["share"], group["lookup_success"], "o-" if not puzzle else "s:",
                             label=f"{label} (measured)")
        if not puzzles:  # the paper's rule knows no puzzles: drawn for sweeps over the share and d alone
            rule = [paper_rule(r.share, r.hops, r.d) for r in group.itertuples()]
            lookups.plot(group["share"], rule, "--", color=line.get_color(), alpha=0.6, label=f"{label}: paper's rule")
        if group["gets"].sum():
            gets.plot(group["share"], group["get_success"], "o-", color=line.get_color(), label=label)
    lookups.plot([PAPER["share"]], [PAPER["success"]], "*", color="black", markersize=12,
                 label="S/Kademlia: 99 % at 20 % (N = 10,000, k = 16)")
    for ax, title in ((lookups, "lookup success"), (gets, "get success (newest version)")):
        ax.set_xlabel("malicious share of the nodes")
        ax.set_ylabel(title)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{name}: {title}")
    lookups.legend(loc="lower left", fontsize="x-small", ncol=2)
    if table["gets"].sum():
        gets.legend(loc="lower left", fontsize="small")
    else:  # no gets in the workload: the lookups alone
        figure.delaxes(gets)
        figure.set_size_inches(6.5, 4.2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path
