"""The per-mechanism table of a run with IPv6 transition mechanisms (``access.json`` beside the events).

Per mechanism: the share of nodes using it, whether they can be dialled (inbound) and dial out, the RTT
of their paths against the same paths without the mechanism, the header bytes it adds (per packet and
per KiB of message), their lookups' latency and success, and how selection went (nodes whose access
network offered it, nodes that chose it, failed probes before the choice, re-probes per node).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.load import read_section
from analysis.render import Doc

ACCESS_FILE = "access.json"




def mechanism_table(access: dict, events: pd.DataFrame) -> list[dict]:
    nodes = access["nodes"]
    chosen = pd.Series([n["mechanism"] for n in nodes])
    lookups = events[events["kind"] == "lookup"] if "kind" in events else events.iloc[0:0]
    if len(lookups):
        lookups = lookups.assign(mechanism=[nodes[int(i)]["mechanism"] if 0 <= int(i) < len(nodes) else None
                                            for i in lookups["node"]])
    rows = []
    for name, m in access["mechanisms"].items():
        users = int((chosen == name).sum())
        offered = sum(n["network"] == name for n in nodes)
        mine = lookups[lookups["mechanism"] == name] if len(lookups) else lookups
        ok = mine[mine["ok"] == 1] if len(mine) else mine
        rtt, native = m.get("rtt_ms"), m.get("rtt_native_ms")
        rows.append({
            "mechanism": name,
            "share": users / len(nodes),
            "inbound": m["inbound"],
            "outbound": "yes" if m["outbound"] else "no",
            "rtt_ms": rtt,
            "rtt_inflation": (rtt / native - 1) if rtt and native else None,
            "overhead": m["overhead_bytes"],
            "mtu": m["mtu"],
            "overhead_per_kib": m["overhead_per_kib"],
            "lookups": len(mine),
            "lookup_p50": ok["latency"].quantile(0.5) if len(ok) else None,
            "lookup_p99": ok["latency"].quantile(0.99) if len(ok) else None,
            "lookup_success": len(ok) / len(mine) if len(mine) else None,
            "offered": offered,
            "chosen": users,
            "fallbacks": sum(n["fallbacks"] for n in nodes if n["network"] == name),
            "reprobes": access["reprobes_per_node"],
        })
    return rows


def _f(value, pattern: str) -> str:
    return "–" if value is None or value != value else pattern.format(value)


def transition_section(doc: Doc, path: Path, events: pd.DataFrame) -> None:
    """The report's section, when the run has an ``access.json``."""
    access = read_section(path, ACCESS_FILE)
    if access is None:
        return
    rows = mechanism_table(access, events)
    doc.heading("Transition mechanisms")
    doc.para("Per mechanism, over the nodes that ended up using it (bootstrap nodes are native). "
             "RTT: the mean round trip of their paths to random peers in the latency model (the peers' own "
             "mechanisms left out), and its inflation over the same paths without the mechanism's detour. "
             "Overhead: header bytes per packet, and per KiB of message in packets of the mechanism's MTU. "
             "Selection: nodes whose access network offered the mechanism, nodes that chose it, how many "
             "attempts on those networks went to a better-ranked mechanism that did not answer first "
             f"(fallbacks), and re-probes per node (every {access['probe_interval']:g} s).")
    doc.table(["mechanism", "nodes", "inbound", "outbound", "RTT", "RTT inflation", "overhead (MTU)",
               "overhead / KiB", "lookups", "lookup p50", "lookup p99", "lookup success", "offered / chosen",
               "fallbacks", "re-probes"],
              [[r["mechanism"], _f(r["share"], "{:.1%}"), r["inbound"], r["outbound"], _f(r["rtt_ms"], "{:.1f} ms"),
                _f(r["rtt_inflation"], "{:+.1%}"), f"{r['overhead']} B ({r['mtu']})", f"{r['overhead_per_kib']} B",
                str(r["lookups"]), _f(r["lookup_p50"], "{:.3f} s"), _f(r["lookup_p99"], "{:.3f} s"),
                _f(r["lookup_success"], "{:.1%}"), f"{r['offered']} / {r['chosen']}", str(r["fallbacks"]),
                str(r["reprobes"])] for r in rows])
