"""The network graph latency model: Shadow's GML convention read with networkx, one path per pair of
vertices for both runtimes, and errors that name the file, the edge and the line."""

from __future__ import annotations

import json
import math
import random
import textwrap
from pathlib import Path

import pytest

from experiment.graph import GraphError, load_graph, parse_latency_ms
from experiment.latency import MatrixError, scenario_matrix, scenario_path_loss
from experiment.scenario import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
CONTINENTS = ROOT / "scenarios" / "graphs" / "continents.gml"


def gml(tmp_path: Path, body: str, name: str = "g.gml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_latencies_in_shadows_units():
    assert parse_latency_ms("50 ms") == 50.0 and parse_latency_ms("1.5ms") == 1.5
    assert parse_latency_ms("200 us") == pytest.approx(0.2) and parse_latency_ms("0.1 s") == 100.0
    assert parse_latency_ms("2500000 ns") == pytest.approx(2.5) and parse_latency_ms(12) == 12.0
    for bad in ("fast", "-3 ms", "10 parsecs", True):
        with pytest.raises(ValueError):
            parse_latency_ms(bad)


def test_the_shipped_graph_paths_latency_and_loss():
    graph = load_graph(CONTINENTS)
    assert graph.names == ("eu-west", "eu-central", "na-east", "na-west", "ap-northeast", "ap-southeast")
    at = graph.names.index
    # Europe to south-east Asia through eu-central (7 + 75 ms), not across America and the Pacific (156 ms)
    assert graph.route("eu-west", "ap-southeast") == ["eu-west", "eu-central", "ap-southeast"]
    assert graph.one_way_ms[at("eu-west")][at("ap-southeast")] == 1.5 + 7 + 75 + 1.5
    assert graph.one_way_ms[at("na-east")][at("na-east")] == 4.0  # the self-loop: two nodes at one vertex
    assert graph.rtt_ms()[at("eu-west")][at("na-east")] == 2 * (1.5 + 37 + 2)
    # na-east -> ap-southeast: eu-west, eu-central (0.001 transatlantic, 0.001 Suez) beats the Pacific way
    assert graph.route("na-east", "ap-southeast") == ["na-east", "eu-west", "eu-central", "ap-southeast"]
    assert graph.loss[at("na-east")][at("ap-southeast")] == pytest.approx(1 - 0.999 ** 2)
    assert graph.loss[at("eu-west")][at("eu-central")] == 0.0 and graph.has_loss()
    for a in graph.names:
        for b in graph.names:
            assert graph.one_way_ms[at(a)][at(b)] == graph.one_way_ms[at(b)][at(a)]


def test_tied_paths_are_one_path_for_latency_loss_and_routes(tmp_path):
    # a square: a-b-d and a-c-d both take 20 ms, but only a-c-d loses packets
    path = gml(tmp_path, """\
        graph [
          node [ id 0 label "a" ] node [ id 1 label "b" ] node [ id 2 label "c" ] node [ id 3 label "d" ]
          edge [ source 0 target 1 latency "10 ms" ] edge [ source 1 target 3 latency "10 ms" ]
          edge [ source 0 target 2 latency "10 ms" packet_loss 0.1 ] edge [ source 2 target 3 latency "10 ms" ]
        ]
        """)
    graph = load_graph(path)
    for a in graph.names:
        for b in graph.names:
            hops = graph.route(a, b)
            lossy = any({x, y} == {"a", "c"} for x, y in zip(hops, hops[1:], strict=False))
            assert graph.loss[graph.names.index(a)][graph.names.index(b)] == pytest.approx(0.1 if lossy else 0.0)
            # every hop's own route to b continues along this one (the routers' tables agree with the model)
            assert hops[1:] == (graph.route(hops[1], b) if len(hops) > 1 else [])


def test_graphml_and_directed_graphs_read_alike(tmp_path):
    graphml = tmp_path / "g.graphml"
    graphml.write_text(textwrap.dedent("""\
        <?xml version="1.0" encoding="UTF-8"?>
        <graphml xmlns="http://graphml.graphdrawing.org/xmlns">
          <key id="lat" for="edge" attr.name="latency" attr.type="string"/>
          <key id="loss" for="edge" attr.name="packet_loss" attr.type="double"/>
          <graph edgedefault="undirected">
            <node id="x"/><node id="y"/>
            <edge source="x" target="y"><data key="lat">25 ms</data><data key="loss">0.01</data></edge>
          </graph>
        </graphml>
        """))
    directed = gml(tmp_path, """\
        graph [ directed 1 node [ id 0 label "x" ] node [ id 1 label "y" ]
          edge [ source 0 target 1 latency "25 ms" packet_loss 0.01 ]
          edge [ source 1 target 0 latency "25 ms" packet_loss 0.01 ] ]
        """)
    for path in (graphml, directed):
        graph = load_graph(path)
        assert graph.names == ("x", "y") and graph.one_way_ms[0][1] == 25.0 and graph.loss[1][0] == pytest.approx(0.01)


@pytest.mark.parametrize(("body", "message"), [
    ('graph [ node [ id 0 ] node [ id 1 ]\n  edge [ source 0 target 1 ] ]',
     "g.gml:2: edge 0 -- 1: no latency"),
    ('graph [ node [ id 0 ] node [ id 1 ]\n\n  edge [ source 1 target 0 latency "soon" ] ]',
     "g.gml:3: edge 0 -- 1: latency 'soon' is not a time"),
    ('graph [ node [ id 0 ] node [ id 1 ]\n  edge [ source 0 target 1 latency "5 ms" packet_loss 1.5 ] ]',
     "g.gml:2: edge 0 -- 1: packet_loss 1.5 is not a probability in [0, 1)"),
    ('graph [ node [ id 0 label "a" ]\n  node [ id 1 label "a" ] edge [ source 0 target 1 latency 5 ] ]',
     "g.gml:2: vertex 1: label 'a' is used twice"),
    ('graph [ node [ id 0 ] node [ id 1 ] node [ id 2 ] edge [ source 0 target 1 latency 5 ] ]',
     "g.gml: the graph is not connected: no path from 2 to 0"),
    ('graph [ directed 1 node [ id 0 ] node [ id 1 ] edge [ source 0 target 1 latency 5 ] ]',
     "g.gml: directed graph: edge 0 -> 1 has no reverse edge"),
    ('graph [ node [ id 0 ] edge [ source 0 target 7 latency 5 ] ]', "g.gml: not a valid GML graph"),
    ('graph [ node [ id 0 ]', "g.gml: not a valid GML graph"),
])
def test_graph_errors_name_the_file_edge_and_line(tmp_path, body, message):
    path = gml(tmp_path, body + "\n")
    with pytest.raises(GraphError) as caught:
        load_graph(path)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert isinstance(caught.value, MatrixError)  # the drivers report both alike


def scenario_text(graph: str, regions: str = "{eu-west: 0.5, ap-southeast: 0.5}") -> str:
    return textwrap.dedent(f"""\
        name: g
        warmup: 10
        duration: 10
        nodes: {{count: 10, bootstrap: 2, join_over: 5, regions: {regions}}}
        network:
          latency: {{model: graph, graph: {graph}}}
        """)


def test_a_scenario_names_its_graph_and_the_vertices_its_nodes_attach_to():
    scenario = parse_scenario(scenario_text("continents.gml"), source=ROOT / "scenarios" / "graphs" / "x.yaml")
    names, rtt = scenario_matrix(scenario)
    assert names[0] == "eu-west" and rtt[0][names.index("ap-southeast")] == 2 * 85.0
    loss = scenario_path_loss(scenario)
    assert loss is not None and loss[0][names.index("ap-southeast")] == pytest.approx(0.001)
    shipped = load_scenario(ROOT / "scenarios" / "graph-small.yaml")
    assert shipped.graph_path == CONTINENTS and "eu-central" not in shipped.nodes.regions
    regions = load_scenario(ROOT / "scenarios" / "churn-small.yaml")
    assert scenario_path_loss(regions) is None


def test_scenario_errors_for_the_graph_model(tmp_path):
    with pytest.raises(ScenarioError, match=r"x.yaml:6: network.latency.graph: file not found"):
        parse_scenario(scenario_text("nowhere.gml"), source=tmp_path / "x.yaml")
    with pytest.raises(ScenarioError, match=r"network.latency.graph: required when model is 'graph'"):
        parse_scenario("name: g\nnetwork: {latency: {model: graph}}\n", source=tmp_path / "x.yaml")
    with pytest.raises(ScenarioError, match=r"network.latency.graph: only used with model: graph"):
        parse_scenario("name: g\nnetwork: {latency: {graph: g.gml}}\n", source=tmp_path / "x.yaml")
    scenario = parse_scenario(scenario_text("continents.gml", "{eu-west: 0.5, mars: 0.5}"),
                              source=ROOT / "scenarios" / "graphs" / "x.yaml")
    with pytest.raises(ScenarioError, match=r"x.yaml:4: nodes.regions.mars: 'mars' is not one of eu-west, "):
        scenario_matrix(scenario)


def test_the_simulator_loses_messages_along_the_graphs_paths():
    from sim.latency import LatencyModel
    from sim.runtime import SimNetwork

    graph = load_graph(CONTINENTS)
    at = graph.names.index
    latency = LatencyModel(graph.rtt_ms(), [at("eu-west"), at("na-east"), at("eu-central")], [0.0] * 3, 0.0,
                           random.Random(1), path_loss=graph.loss)
    network = SimNetwork(None, latency, 0.1, random.Random(2))
    assert network.pair_loss[at("eu-west")][at("na-east")] == pytest.approx(1 - 0.9 * 0.999)
    assert latency.one_way(0, 1) == pytest.approx((1.5 + 37 + 2) / 1000)
    lost = sum(network._lost(0, 1, None) for _ in range(20000)) / 20000
    assert lost == pytest.approx(1 - 0.9 * 0.999, abs=0.006)
    assert math.isclose(sum(network._lost(0, 2, None) for _ in range(20000)) / 20000, 0.1, abs_tol=0.006)


def test_graph_runs_are_deterministic(tmp_path):
    from sim.cli import main

    for out in ("a", "b"):
        assert main([str(ROOT / "scenarios" / "graph-small.yaml"), "--nodes", "12", "--out", str(tmp_path / out)]) == 0
    a, b = (next((tmp_path / out).iterdir()) for out in ("a", "b"))
    assert (a / "summary.json").read_text() == (b / "summary.json").read_text()
    assert (a / "events.csv").read_bytes() == (b / "events.csv").read_bytes()
    summary = json.loads((a / "summary.json").read_text())
    assert summary["stats"]["lookups"] > 0


def test_a_graph_scenarios_simulation_loses_along_its_paths(tmp_path):
    from p2pnode.eventlog import EventWriter
    from sim.simulation import Simulation

    events = EventWriter(tmp_path / "events.csv")
    sim = Simulation(load_scenario(ROOT / "scenarios" / "graph-small.yaml"), events)
    events.close()
    graph = load_graph(CONTINENTS)
    at = graph.names.index
    assert sim.network.pair_loss is not None
    assert sim.network.pair_loss[at("na-east")][at("ap-southeast")] == pytest.approx(1 - 0.999 ** 2)
