"""The NAT section of a report (docs/nat.md): a run with NATs has ``nat.json`` beside its events.

From the events both runtimes write (``reachability``, ``reservation``, ``connection``, ``hole_punch``,
``relay_load``, ``relay_bytes``) and each node's NAT in ``nat.json``:

- reachability: per NAT type, the nodes AutoNAT judged public or private, and how often it was right (the
  simulator knows the truth; an emulated run leaves it out);
- connections: of the connections that needed the NAT traversal, the share that ended direct (by connection
  reversal or hole punching) and the share that stayed relayed; the extra round trip through relays;
- hole punching: DCUtR's success per pair of NAT types (the inbound side first) as a table and a matrix plot,
  per transport, the share of successes on the first attempt, set against Trautwein et al. 2025 (arXiv
  2510.27500: 70 % ± 7.1 % of attempts succeed, TCP and QUIC alike, 97.6 % of successes at the first try);
- relay load: reservations and circuits per relay at their peak, bytes relayed.

A sweep over ``nat: [true, false]`` adds the lookup and delivery figures with NATs against the same network
without them (``nat_comparison``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.load import read_section
from analysis.render import Doc

NAT_FILE = "nat.json"
MATRIX_PNG = "hole_punch_matrix.png"
TRAUTWEIN = {"success": 0.70, "spread": 0.071, "first_attempt": 0.976}
TRANSPORTS = {0: "QUIC", 1: "TCP"}




def _kind(events: pd.DataFrame, kind: str) -> pd.DataFrame:
    return events[events["kind"] == kind] if "kind" in events else events.iloc[0:0]


def _labels(nat: dict) -> list[str]:
    return [n["nat"] for n in nat["nodes"]]


def _label(labels: list[str], index) -> str:
    i = int(index)
    return labels[i] if 0 <= i < len(labels) else "?"


def punch_runs(nat: dict, events: pd.DataFrame) -> pd.DataFrame:
    """One row per DCUtR upgrade: inbound side's and dialler's NAT, whether any transport connected, the
    attempts, and per transport whether it connected."""
    rows = _kind(events, "hole_punch")
    if not len(rows):
        return pd.DataFrame(columns=["b", "a", "ok", "attempts", "QUIC", "TCP"])
    labels = _labels(nat)
    out = []
    for (_time, node, peer), group in rows.groupby(["time", "node", "value"], sort=True):
        by_transport = {TRANSPORTS.get(int(h), "?"): bool(ok) for h, ok in zip(group["hops"], group["ok"],
                                                                                 strict=True) if h == h}
        out.append({"b": _label(labels, node), "a": _label(labels, peer), "ok": bool(group["ok"].max() == 1),
                    "attempts": int(group["count"].max()), **by_transport})
    return pd.DataFrame(out)


def punch_matrix(runs: pd.DataFrame) -> pd.DataFrame:
    """Success share per (inbound side's NAT, dialler's NAT), with the number of upgrades."""
    if not len(runs):
        return pd.DataFrame(columns=["b", "a", "success", "runs"])
    grouped = runs.groupby(["b", "a"])["ok"]
    return pd.DataFrame({"success": grouped.mean(), "runs": grouped.size()}).reset_index()


def punch_figures(runs: pd.DataFrame) -> dict:
    """Overall success, per transport, and the first-attempt share of successes."""
    if not len(runs):
        return {}
    ok = runs[runs["ok"]]
    figures = {"runs": len(runs), "success": float(runs["ok"].mean()),
               "first_attempt": float((ok["attempts"] == 1).mean()) if len(ok) else None}
    for name in TRANSPORTS.values():
        if name in runs:
            tried = runs[name].dropna()
            figures[f"success_{name}"] = float(tried.astype(bool).mean()) if len(tried) else None
    return figures


def connection_shares(events: pd.DataFrame) -> dict:
    """Of the pairs that needed a relayed connection: how many ended direct; the relays' extra round trip."""
    rows = _kind(events, "connection")
    if not len(rows):
        return {}
    pairs = rows.assign(pair=[tuple(sorted((int(n), int(v)))) for n, v in zip(rows["node"], rows["value"],
                                                                                  strict=True)])
    last = pairs.groupby("pair")["ok"].last()
    relayed, direct = pairs[pairs["ok"] == 0], pairs[pairs["ok"] == 1]
    both = relayed.groupby("pair")["latency"].first().to_frame("relayed").join(
        direct.groupby("pair")["latency"].first().to_frame("direct"), how="inner")
    return {"pairs": int(len(last)), "direct": float((last == 1).mean()), "relayed": float((last == 0).mean()),
            "relayed_rtt_p50": float(relayed["latency"].median()) if len(relayed) else None,
            "direct_rtt_p50": float(direct["latency"].median()) if len(direct) else None,
            "extra_rtt_mean": float((both["relayed"] - both["direct"]).mean()) if len(both) else None,
            "extra_rtt_pairs": int(len(both))}


def reachability_table(nat: dict, events: pd.DataFrame) -> list[dict]:
    rows = _kind(events, "reachability")
    labels = _labels(nat)
    final = rows.groupby("node").last() if len(rows) else rows
    table = []
    for label in sorted(set(labels)):
        members = [i for i, x in enumerate(labels) if x == label]
        judged = final[final.index.isin(members)] if len(final) else final
        table.append({"nat": label, "nodes": len(members), "judged": len(judged),
                      "public": int((judged["value"] == 1).sum()) if len(judged) else 0,
                      "private": int((judged["value"] == 0).sum()) if len(judged) else 0,
                      "right": float(judged["ok"].mean()) if len(judged) and judged["ok"].notna().any() else None})
    return table


def relay_load(events: pd.DataFrame) -> dict:
    load, volume = _kind(events, "relay_load"), _kind(events, "relay_bytes")
    if not len(load):
        return {}
    per_relay = load.groupby("node").agg(circuits=("value", "max"), reservations=("count", "max"))
    relayed = volume.groupby("node")["value"].max() if len(volume) else pd.Series(dtype=float)
    return {"relays": int(len(per_relay)), "reservations_max": int(per_relay["reservations"].max()),
            "reservations_mean": float(per_relay["reservations"].mean()),
            "circuits_max": int(per_relay["circuits"].max()), "circuits_mean": float(per_relay["circuits"].mean()),
            "bytes_max": float(relayed.max()) if len(relayed) else 0.0,
            "bytes_total": float(relayed.sum()) if len(relayed) else 0.0}


def plot_matrix(matrix: pd.DataFrame, path: Path) -> Path | None:
    if not len(matrix):
        path.unlink(missing_ok=True)
        return None
    rows = sorted(matrix["b"].unique())
    cols = sorted(matrix["a"].unique())
    grid = np.full((len(rows), len(cols)), np.nan)
    counts = np.zeros_like(grid)
    for r in matrix.itertuples():
        grid[rows.index(r.b), cols.index(r.a)] = r.success
        counts[rows.index(r.b), cols.index(r.a)] = r.runs
    figure = Figure(figsize=(1.4 * len(cols) + 2.5, 0.7 * len(rows) + 1.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("dialling side's NAT")
    ax.set_ylabel("inbound side's NAT (drives DCUtR)")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0%}\n({int(counts[i, j])})", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=ax, label="hole-punch success")
    ax.set_title("DCUtR hole-punch success per NAT pair")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def _f(value, pattern: str) -> str:
    return "–" if value is None or value != value else pattern.format(value)


def nat_section(doc: Doc, path: Path, events: pd.DataFrame) -> list[Path]:
    """The report's NAT section, when the run has a ``nat.json``; returns the PNGs it wrote."""
    nat = read_section(path, NAT_FILE)
    if nat is None:
        return []
    doc.heading("NAT traversal")
    doc.para("Nodes by NAT (the inbound side of a relayed connection drives the hole punch). "
             + ("The simulator's boxes follow RFC 4787; see docs/nat.md." if nat.get("model") == "sim"
                else "Real NATs: nftables in the emulation's namespaces; see docs/nat.md."))
    reach = reachability_table(nat, events)
    doc.table(["NAT", "nodes", "AutoNAT verdicts", "public", "private", "verdict right"],
              [[r["nat"], str(r["nodes"]), str(r["judged"]), str(r["public"]), str(r["private"]),
                _f(r["right"], "{:.0%}")] for r in reach])
    shares = connection_shares(events)
    if shares:
        doc.para(f"Connections that needed traversal: {shares['pairs']} node pairs; "
                 f"{shares['direct']:.1%} ended direct (connection reversal or hole punch), "
                 f"{shares['relayed']:.1%} stayed relayed. Round trip through a relay (median): "
                 f"{_f(shares['relayed_rtt_p50'], '{:.3f} s')}, direct: {_f(shares['direct_rtt_p50'], '{:.3f} s')}; "
                 f"extra round trip of the relay over the direct path, pairs with both: "
                 f"{_f(shares['extra_rtt_mean'], '{:+.3f} s')} ({shares['extra_rtt_pairs']} pairs).")
    runs = punch_runs(nat, events)
    figures = punch_figures(runs)
    written = []
    if figures:
        doc.para(f"Hole punching: {figures['runs']} DCUtR upgrades, {figures['success']:.1%} connected "
                 f"(QUIC {_f(figures.get('success_QUIC'), '{:.1%}')}, TCP {_f(figures.get('success_TCP'), '{:.1%}')}); "
                 f"{_f(figures['first_attempt'], '{:.1%}')} of the successes at the first attempt. "
                 f"Measured in the wild (Trautwein et al. 2025, IPFS): {TRAUTWEIN['success']:.0%} ± "
                 f"{TRAUTWEIN['spread']:.1%}, TCP and QUIC alike, {TRAUTWEIN['first_attempt']:.1%} at the first "
                 "attempt.")
        matrix = punch_matrix(runs)
        doc.table(["inbound side", "dialler", "upgrades", "success"],
                  [[r.b, r.a, str(r.runs), f"{r.success:.0%}"] for r in matrix.itertuples()])
        png = plot_matrix(matrix, Path(path) / MATRIX_PNG)
        if png is not None:
            doc.image(png.name, "hole-punch matrix", "DCUtR success per pair of NAT types (upgrades in brackets).")
            written.append(png)
    load = relay_load(events)
    if load:
        doc.para(f"Relay load: {load['relays']} relays; reservations per relay at peak {load['reservations_max']} "
                 f"(mean {load['reservations_mean']:.1f}), circuits at once {load['circuits_max']} (mean "
                 f"{load['circuits_mean']:.1f}); {load['bytes_total'] / 1e6:.2f} MB relayed in all, at most "
                 f"{load['bytes_max'] / 1e6:.2f} MB by one relay.")
    return written


def nat_comparison(doc: Doc, points: list[dict]) -> None:
    """A sweep's points with NATs against the same points without."""
    pairs: dict[str, dict[str, dict]] = {}
    for p in points:
        name = p.get("dir") or ""
        for flag in ("on", "off"):
            if name.endswith(f"-nat-{flag}"):
                pairs.setdefault(name[: -len(f"-nat-{flag}")], {})[flag] = p

    def figure(point: dict, key: str):
        return point.get("pubsub", {}).get(key) if key.startswith("delivery") else point.get(key)

    rows = []
    for base, both in pairs.items():
        if len(both) != 2:
            continue
        for key, name, pattern in (("lookup_p99", "lookup p99", "{:.3f} s"),
                                   ("lookup_success", "lookup success", "{:.1%}"),
                                   ("delivery_latency_p99", "delivery p99", "{:.3f} s"),
                                   ("delivery_rate", "delivery rate", "{:.2%}")):
            on, off = figure(both["on"], key), figure(both["off"], key)
            if on is not None or off is not None:
                rows.append([base, name, _f(on, pattern), _f(off, pattern)])
    if rows:
        doc.heading("With NATs and without")
        doc.para("The same network and workload, once with the scenario's NATs and once with every node public.")
        doc.table(["point", "figure", "with NATs", "without"], rows)
