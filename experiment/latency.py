"""The latency model's inputs: region names and the round-trip times between them (ms).

The built-in table gives median RTTs in milliseconds between nine regions. The figures are rounded from
public inter-datacentre ping measurements (cloud-provider region-to-region tables and WonderNetwork-style
city pings, 2023-2025); they describe backbone paths between well-connected hosts, so each node also gets a
last-mile access latency on top (scenario ``network.latency.access``). A scenario can replace the table
with its own CSV matrix (``model: matrix``): a header row ``region,<name>,<name>…`` and one row of RTTs in
milliseconds per region, symmetric, with the diagonal the intra-region RTT.

Both drivers read their model from here: the simulator's per-message delay (``sim/latency.py``) and the
emulator's link delays (``emulator/``, ``topologies/topos.py``). Standard library only: the
topologies are also loaded by Mininet's own interpreter.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from p2pnode.userinput import InputFileError, quote, read_text

REGIONS = (
    "na-east", "na-west", "sa-east", "eu-west", "eu-central", "ap-northeast", "ap-southeast", "oceania", "africa",
)

# Median RTT in ms, upper triangle including the diagonal (intra-region), in REGIONS order.
_RTT_MS = (
    (8, 65, 115, 75, 90, 160, 215, 200, 225),
    (8, 170, 135, 150, 105, 165, 140, 275),
    (8, 180, 200, 255, 320, 305, 340),
    (6, 15, 215, 160, 260, 155),
    (6, 225, 150, 250, 165),
    (6, 70, 110, 330),
    (6, 95, 290),
    (6, 390),
    (10,),
)


def builtin_matrix() -> tuple[tuple[str, ...], list[list[float]]]:
    n = len(REGIONS)
    rtt = [[0.0] * n for _ in range(n)]
    for i, row in enumerate(_RTT_MS):
        for offset, value in enumerate(row):
            j = i + offset
            rtt[i][j] = rtt[j][i] = float(value)
    return REGIONS, rtt


MAX_MATRIX_BYTES = 16 << 20  # a thousand regions fit in a few MB
MAX_RTT_MS = 60_000.0  # a minute: a geostationary hop is ~600 ms; more is a unit mistake


class MatrixError(ValueError):
    """A latency model's file (a CSV matrix, or a network graph: experiment.graph.GraphError) that cannot be
    used; the message is one line naming the file and line."""


def load_matrix(path: Path) -> tuple[tuple[str, ...], list[list[float]]]:
    """Read a CSV RTT matrix (ms). Errors name the file and line."""
    try:
        text = read_text(path, MAX_MATRIX_BYTES)
    except InputFileError as exc:
        where = f"{path}:{exc.line}" if exc.line else f"{path}"
        raise MatrixError(f"{where}: cannot read the latency matrix: {exc.reason}") from None
    try:
        reader = csv.reader(text.splitlines())
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise MatrixError(f"{path}: not a CSV latency matrix ({exc})") from None
    if len(rows) < 2:
        raise MatrixError(f"{path}: a latency matrix needs a header row and at least one region row")
    header_line, header = rows[0]
    names = tuple(cell.strip() for cell in header[1:])
    if len(set(names)) != len(names) or not all(names):
        raise MatrixError(f"{path}:{header_line}: region names in the header must be unique and non-empty")
    if len(rows) - 1 != len(names):
        raise MatrixError(f"{path}: {len(names)} regions in the header but {len(rows) - 1} rows")
    rtt, lines = [], []
    for (line, row), name in zip(rows[1:], names, strict=True):
        if row[0].strip() != name:
            raise MatrixError(f"{path}:{line}: row is for {quote(row[0].strip())}, expected {quote(name)}")
        if len(row) - 1 != len(names):
            raise MatrixError(f"{path}:{line}: expected {len(names)} RTT values, found {len(row) - 1}")
        try:
            values = [float(cell) for cell in row[1:]]
        except ValueError:
            raise MatrixError(f"{path}:{line}: RTT values must be numbers (ms)") from None
        bad = [v for v in values if not 0 <= v <= MAX_RTT_MS]  # NaN and inf are refused too
        if bad:
            raise MatrixError(f"{path}:{line}: RTT values are milliseconds in [0, {MAX_RTT_MS:g}], got {bad[0]:g}")
        rtt.append(values)
        lines.append(line)
    for i in range(len(names)):
        for j in range(i):
            if abs(rtt[i][j] - rtt[j][i]) > 1e-9:
                raise MatrixError(f"{path}:{lines[i]}: matrix is not symmetric "
                                  f"({quote(names[i], 30)} <-> {quote(names[j], 30)})")
    return names, rtt


def scenario_matrix(scenario: Any) -> tuple[tuple[str, ...], list[list[float]]]:
    """The region names and RTT matrix (ms) a scenario's latency model uses: its CSV matrix, its network
    graph's vertices and the RTTs along their paths (experiment.graph), or the table. Regions the scenario
    names that the model lacks are a ScenarioError naming their lines."""
    model = scenario.network.latency.model
    if model == "matrix":
        names, rtt = load_matrix(scenario.matrix_path)
    elif model == "graph":
        graph = scenario_graph(scenario)
        names, rtt = graph.names, graph.rtt_ms()
    else:
        names, rtt = builtin_matrix()
    if model != "regions":
        from experiment.scenario import validate_regions  # pydantic: not under Mininet's interpreter

        validate_regions(scenario, names)
    return names, rtt


def scenario_graph(scenario: Any):
    """The network graph of a scenario whose latency model is a graph (networkx: not under Mininet's own
    interpreter)."""
    from experiment.graph import load_graph

    return load_graph(scenario.graph_path)


def scenario_path_loss(scenario: Any) -> tuple[tuple[float, ...], ...] | None:
    """Loss between regions along their paths (from row to column), for a graph whose edges lose packets;
    None for the other models (loss is then `network.loss` alone)."""
    if scenario.network.latency.model != "graph":
        return None
    graph = scenario_graph(scenario)
    return graph.loss if graph.has_loss() else None
