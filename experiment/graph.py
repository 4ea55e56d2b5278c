"""A network graph as the latency model (``network.latency.model: graph``), read with networkx.

The file follows Shadow's network graph convention (GML, or GraphML with the same attributes), so graphs that
researchers already have can be used as they are:

* vertices are network locations; nodes attach to them by name through ``nodes.regions``, where a vertex's name
  is its ``label`` (else its ``id``); vertices no node attaches to still carry paths;
* an edge has a one-way ``latency`` (``"50 ms"``, also ``us``, ``ns``, ``s``; a bare number is milliseconds) and
  a ``packet_loss`` (a probability, default 0); ``jitter`` and the vertices' ``host_bandwidth_*`` are read and
  not used (the scenario's ``network.latency.jitter`` applies);
* an undirected graph (``directed 0``, Shadow's default) has symmetric edges; a directed one must give both
  directions of every edge alike (asymmetric paths are not emulated);
* a self-loop on a vertex is the path between two nodes attached to it.

Between two vertices both runtimes use one path, of least total latency (Dijkstra; the simulator's delay and
loss and the emulator's static routes follow the same path, also where several paths tie). A node reaches its
vertex through half of that vertex's self-loop, so between nodes at vertices u and v the one-way latency is
self(u)/2 + the path's edge latencies + self(v)/2 (exactly self(u) when u = v, as in Shadow; Shadow adds no
self-loop share between distinct vertices), and the loss 1 − Π(1 − loss) over the same hops, each half
self-loop losing 1 − √(1 − self-loop loss).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from experiment.latency import MatrixError
from p2pnode.userinput import InputFileError, quote, read_text

MAX_GRAPH_BYTES = 32 << 20
MAX_VERTICES = 2000  # Shadow's Internet-wide graph has ~1,100; the path table grows with the square


class GraphError(MatrixError):
    """A graph file that cannot be used; the message is one line naming the file (and the line, in GML)."""


_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1000.0, "sec": 1000.0,
             "msec": 1.0, "usec": 1e-3, "nsec": 1e-6}
_TIME = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµμ]*)\s*")


def parse_latency_ms(value: object) -> float:
    """A latency as Shadow writes it ("50 ms", "1.5ms", "200 us") or a number of milliseconds."""
    if isinstance(value, bool):
        raise ValueError(f"{quote(value)} is not a time")
    if isinstance(value, int | float):
        number, unit = float(value), "ms"
    else:
        match = _TIME.fullmatch(str(value))
        if not match or (match.group(2) or "ms") not in _UNITS_MS:
            raise ValueError(f"{quote(value)} is not a time (for example \"50 ms\")")
        number, unit = float(match.group(1)), match.group(2) or "ms"
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{quote(value)} is not a time >= 0")
    return number * _UNITS_MS[unit]


def _loss(value: object) -> float:
    if value is None:
        return 0.0
    number = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else math.nan
    if not 0 <= number < 1:
        raise ValueError(f"{quote(value)} is not a probability in [0, 1)")
    return number


@dataclass(frozen=True)
class Edge:
    a: str
    b: str
    latency_ms: float  # one way
    loss: float        # per packet (the simulator: per message)


@dataclass(frozen=True)
class NetworkGraph:
    """A connected graph of named vertices and the one path the runtimes use between each pair."""

    path: Path
    names: tuple[str, ...]                      # vertices, in the file's order
    edges: tuple[Edge, ...]                     # between distinct vertices, each once
    self_loops: dict[str, Edge]                 # vertex -> its self-loop
    next_hop: dict[tuple[str, str], str]        # (vertex, destination vertex) -> the neighbour towards it
    one_way_ms: tuple[tuple[float, ...], ...]   # node to node between vertices, in names order
    loss: tuple[tuple[float, ...], ...]         # along the same paths, from row to column

    def route(self, a: str, b: str) -> list[str]:
        """The vertices from a to b along the path both runtimes use."""
        hops = [a]
        while hops[-1] != b:
            hops.append(self.next_hop[(hops[-1], b)])
        return hops

    def rtt_ms(self) -> list[list[float]]:
        return [[2 * value for value in row] for row in self.one_way_ms]

    def access(self, name: str) -> tuple[float, float]:
        """A node's hop to its vertex: half the self-loop's latency (ms), and the loss that makes two such hops
        lose as the self-loop does."""
        loop = self.self_loops.get(name)
        if loop is None:
            return 0.0, 0.0
        return loop.latency_ms / 2, 1 - math.sqrt(1 - loop.loss)

    def has_loss(self) -> bool:
        return any(edge.loss for edge in self.edges) or any(loop.loss for loop in self.self_loops.values())


def _gml_line(text: str, block: str, keys: dict[str, object]) -> int | None:
    """The line of the first ``block [ ... ]`` (node or edge) of a GML text whose keys have these values."""
    for match in re.finditer(rf"\b{block}\s*\[([^\[\]]*)\]", text):
        body = match.group(1)
        if all(re.search(rf"\b{key}\s+\"?{re.escape(str(value))}\"?(\s|$)", body) for key, value in keys.items()):
            return text.count("\n", 0, match.start()) + 1
    return None


@functools.lru_cache(maxsize=8)
def load_graph(path: Path) -> NetworkGraph:
    """Read and check a GML (.gml) or GraphML (.graphml, .xml) graph; raise GraphError with a one-line reason."""
    import networkx as nx

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        text = read_text(path, MAX_GRAPH_BYTES)
    except InputFileError as exc:
        where = f"{path}:{exc.line}" if exc.line else f"{path}"
        raise GraphError(f"{where}: cannot read the network graph: {exc.reason}") from None
    try:
        if suffix == ".gml":
            graph = nx.parse_gml(text.splitlines(), label="id")
        elif suffix in (".graphml", ".xml"):
            graph = nx.parse_graphml(text)
        else:
            raise GraphError(f"{path}: a network graph is a .gml or .graphml file")
    except (nx.NetworkXError, ValueError, SyntaxError) as exc:
        if isinstance(exc, GraphError):
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise GraphError(f"{path}: not a valid {suffix[1:].upper()} graph ({reason})") from None

    def where(block: str, **keys: object) -> str:
        line = None
        if suffix == ".gml":
            line = _gml_line(text, block, keys)
            if line is None and block == "edge":  # an undirected edge may be listed either way round
                line = _gml_line(text, block, {"source": keys["target"], "target": keys["source"]})
        return f"{path}:{line}" if line else f"{path}"

    if graph.is_multigraph():
        raise GraphError(f"{path}: a multigraph has parallel edges; give one edge per pair of vertices")
    if not len(graph):
        raise GraphError(f"{path}: the graph has no vertices")
    if len(graph) > MAX_VERTICES:
        raise GraphError(f"{path}: {len(graph)} vertices; at most {MAX_VERTICES} (paths between every pair are kept)")
    names: dict[object, str] = {}
    for vertex, data in graph.nodes(data=True):
        name = str(data.get("label", vertex)).strip()
        if not name:
            raise GraphError(f"{where('node', id=vertex)}: vertex {vertex} has an empty label")
        if name in names.values():
            raise GraphError(f"{where('node', id=vertex)}: vertex {vertex}: label {quote(name)} is used twice")
        names[vertex] = name
    edges: dict[tuple[str, str], Edge] = {}
    for u, v, data in graph.edges(data=True):
        what = f"edge {u} -> {v}" if graph.is_directed() else f"edge {u} -- {v}"
        if "latency" not in data:
            raise GraphError(f"{where('edge', source=u, target=v)}: {what}: no latency (for example \"50 ms\")")
        try:
            latency = parse_latency_ms(data["latency"])
        except ValueError as exc:
            raise GraphError(f"{where('edge', source=u, target=v)}: {what}: latency {exc}") from None
        try:
            loss = _loss(data.get("packet_loss"))
        except ValueError as exc:
            raise GraphError(f"{where('edge', source=u, target=v)}: {what}: packet_loss {exc}") from None
        edges[(names[u], names[v])] = Edge(names[u], names[v], latency, loss)
    if graph.is_directed():
        for (a, b), edge in edges.items():
            back = edges.get((b, a))
            if back is None or (back.latency_ms, back.loss) != (edge.latency_ms, edge.loss):
                raise GraphError(f"{path}: directed graph: edge {a} -> {b} has no reverse edge with the same "
                                 "latency and packet_loss (asymmetric paths are not emulated; give directed 0)")
    undirected = nx.Graph()
    undirected.add_nodes_from(names.values())
    loops, links = {}, []
    for (a, b), edge in edges.items():
        if a == b:
            loops[a] = edge
        elif not undirected.has_edge(a, b):
            undirected.add_edge(a, b, latency=edge.latency_ms)
            links.append(edge)
    if not nx.is_connected(undirected):
        order = list(names.values()).index  # components named in the file's order, whatever the hash seed
        parts = sorted((sorted(part, key=order) for part in nx.connected_components(undirected)),
                       key=lambda part: (-len(part), order(part[0])))
        raise GraphError(f"{path}: the graph is not connected: no path from {', '.join(parts[1][:5])} to "
                         f"{parts[0][0]}")
    return _with_paths(path, tuple(names.values()), tuple(links), loops, undirected)


def _with_paths(path: Path, names: tuple[str, ...], links: tuple[Edge, ...], loops: dict[str, Edge],
                graph) -> NetworkGraph:
    """Choose one least-latency path between every pair: for each destination, Dijkstra's tree rooted at it, so
    that every vertex's next hop towards a destination leads along the very path counted for it."""
    import networkx as nx

    edge_of = {frozenset((edge.a, edge.b)): edge for edge in links}
    next_hop: dict[tuple[str, str], str] = {}
    for destination in names:
        for source, hops in nx.single_source_dijkstra_path(graph, destination, weight="latency").items():
            if source != destination:
                next_hop[(source, destination)] = hops[-2]  # hops run from the destination to the source
    model = NetworkGraph(path, names, links, loops, next_hop, (), ())
    one_way, loss = [], []
    for a in names:
        row_ms, row_loss = [], []
        for b in names:
            (start_ms, start_loss), (end_ms, end_loss) = model.access(a), model.access(b)
            hops = [edge_of[frozenset(pair)] for pair in pairwise(model.route(a, b))]
            row_ms.append(start_ms + end_ms + sum(edge.latency_ms for edge in hops))
            row_loss.append(1 - (1 - start_loss) * (1 - end_loss) * math.prod(1 - edge.loss for edge in hops))
        one_way.append(tuple(row_ms))
        loss.append(tuple(row_loss))
    return NetworkGraph(path, names, links, loops, next_hop, tuple(one_way), tuple(loss))
