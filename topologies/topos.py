"""Mininet topologies for the emulation testbed (also usable with ``mn --custom topologies/topos.py``).

* ``Pair(delay, loss, bw, jitter)`` — two hosts joined by one direct link (no switch); for link measurements.
* ``FlatLan(n)`` — dual-stack hosts h1..hn on one switch s1: IPv6 ``fd00:1::<i>/64``, IPv4 ``10.0.0.<i>/16``.
* ``Regions(n, regions, delays)`` — hosts spread round-robin over regions; region j is a switch ``s<j>`` plus a
  router host ``r<j>``; every pair of routers has a direct link whose one-way delay is the inter-region delay
  (default: the latency model's region table, ``experiment/latency.py``, one-way = RTT / 2). Routed IPv6 (and IPv4)
  between regions with static routes.
* ``Graph(n, vertices, edges, next_hop, host_vertices)`` — one router per vertex of a network graph, a link per
  edge with its latency and loss, static routes along the latency model's paths (``experiment/graph.py``).
* ``HomeNat(n, nat)`` — public hosts on an "internet" switch s1, the other hosts each in a home network
  (switch + router ``n<k>``) behind an nftables IPv4 NAT; IPv6 is routed to every host (no NAT for IPv6).

Addresses exist only inside the emulated namespaces. Link properties use Mininet's TCLink parameter names
(``delay='20ms'``, ``jitter``, ``loss`` in percent, ``bw`` in Mbit/s), each per direction; ``EmulatedNetwork``
(topologies/net.py) decides how to emulate them (netem, or the user-space relay). Each node carries its own
configuration as parameters (``ip6``, ``routes``, ``router``, ``nat``…, applied by ``DualStackHost.config``),
so the same topologies work under plain ``mn``:

    mn --custom topologies/topos.py --topo flatlan,4 --switch lxbr --controller none --link tc

All addressing plans are in topologies/README.md.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

# ``mn --custom`` exec()s this file without a package: make ``topologies.*`` importable.
_HERE = Path(globals().get("__file__") or sys._getframe().f_code.co_filename).resolve()  # noqa: SLF001
if __name__ != "topologies.topos" and str(_HERE.parent.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent.parent))

from mininet.node import Host  # noqa: E402
from mininet.topo import Topo  # noqa: E402

from experiment.latency import builtin_matrix  # noqa: E402
from topologies.ipv6 import configure_node, prepare_namespace, run  # noqa: E402

NAT_TYPES = ("cone", "symmetric")
NAT_FLAGS = {"cone": "persistent", "symmetric": "fully-random"}


class DualStackHost(Host):
    """A Mininet host that configures its own IPv6/IPv4 addresses, routes, forwarding and NAT.

    Node parameters (besides Mininet's ``ip``/``mac``): ``ip6`` — CIDR(s) for the default interface;
    ``routes`` — (prefix, via) pairs, either family; ``router`` — enable forwarding; ``nat`` — "cone" or
    "symmetric" with ``nat_lan`` the IPv4 prefix to masquerade. Interface parameters (``params1``/``params2``
    of a link): ``ip6`` and ``ip4`` — CIDR(s) for that interface.
    """

    def config(self, ip6=None, routes=(), router=False, nat=None, nat_lan=None, **params):
        result = super().config(**params)
        addresses: dict[str, list[str]] = {}
        default = self.defaultIntf()
        if ip6 and default is not None:
            addresses.setdefault(str(default), []).extend(_as_list(ip6))
        for intf in self.intfList():
            for key in ("ip6", "ip4"):
                if intf.params.get(key):
                    addresses.setdefault(str(intf), []).extend(_as_list(intf.params[key]))
        configure_node(self, router=router, addresses=addresses, routes=[tuple(r) for r in routes])
        if nat:
            configure_nat(self, nat, nat_lan)
        return result


class RelayHost(Host):
    """The middle node of a link emulated by ``topologies.relay``: no addresses, IPv6 off, interfaces up."""

    def config(self, **params):
        params["ip"] = None
        result = super().config(**params)
        prepare_namespace(self, ipv6=False)
        for intf in self.intfList():
            run(self, f"sysctl -q -w net.ipv6.conf.{intf}.disable_ipv6=1 >/dev/null; ip link set {intf} up")
        return result


def configure_nat(node, nat: str, lan: str) -> None:
    """IPv4 masquerading of ``lan`` with nftables. Linux conntrack filters inbound by address and port
    either way; "cone" keeps the source port where it is free (endpoint-independent mapping), "symmetric"
    picks a random port per connection (``fully-random``: a new mapping per destination)."""
    if nat not in NAT_TYPES:
        raise ValueError(f"nat must be one of {NAT_TYPES}, not {nat!r}")
    net = ipaddress.IPv4Network(lan)
    # printf turns the \\n escapes into newlines: the command itself must stay on one line (interactive shell).
    rules = (f"table ip p2pe_nat {{\\n chain postrouting {{\\n  type nat hook postrouting priority 100;\\n"
             f"  ip saddr {net} ip daddr != {net} masquerade {NAT_FLAGS[nat]}\\n }}\\n}}\\n")
    run(node, f"printf '{rules}' | nft -f -")


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _hostnum(i: int) -> str:
    """Host i's interface identifier: decimal digits read as hex, so h12 is ::12 (readable, unique)."""
    return str(i)


def _ip4_host(base: str, i: int) -> str:
    """The i-th address of an IPv4 /16 base such as 10.0.0.0 (i >= 1), skipping .0 and .255 of each /24."""
    if not 1 <= i <= 254 * 250:
        raise ValueError("host index out of range")
    hi, lo = divmod(i - 1, 254)
    return str(ipaddress.IPv4Address(base) + hi * 256 + lo + 1)


class Pair(Topo):
    """Two hosts h1, h2 on one direct link with the given per-direction delay/jitter/loss/bandwidth."""

    def build(self, delay=None, loss=None, bw=None, jitter=None):
        h1 = self.addHost("h1", cls=DualStackHost, ip="10.0.0.1/16", ip6="fd00:1::1/64")
        h2 = self.addHost("h2", cls=DualStackHost, ip="10.0.0.2/16", ip6="fd00:1::2/64")
        self.addLink(h1, h2, **_link_opts(delay=delay, loss=loss, bw=bw, jitter=jitter))


class FlatLan(Topo):
    """n dual-stack hosts on one switch; optional per-host-link delay/loss/bw (each host's access link)."""

    def build(self, n=4, delay=None, loss=None, bw=None, jitter=None):
        if n < 1:
            raise ValueError("FlatLan needs at least one host")
        switch = self.addSwitch("s1")
        for i in range(1, n + 1):
            host = self.addHost(f"h{i}", cls=DualStackHost, ip=f"{_ip4_host('10.0.0.0', i)}/16",
                                ip6=f"fd00:1::{_hostnum(i)}/64")
            self.addLink(host, switch, **_link_opts(delay=delay, loss=loss, bw=bw, jitter=jitter))


def _link_opts(**opts) -> dict:
    return {k: v for k, v in opts.items() if v is not None}


def _ms(value: float) -> str:
    return f"{value:g}ms"


class Regions(Topo):
    """Hosts spread round-robin over regions joined pairwise by router-to-router links.

    ``regions``: a number k (the first k regions of the latency model) or a sequence of region names from it.
    ``delays``: optional one-way inter-region delays in ms — a k×k matrix (list of lists) or a mapping
    ``{(name_a, name_b): ms}``; default from the model, one-way = RTT / 2. ``access_delay``: optional delay of
    each host's link to its region switch (e.g. '2ms'), adding to every path that leaves the host.
    ``host_regions``: optional region name per host (h1 first), instead of round-robin placement; ``access_ms``:
    optional one-way access-link delay per region name (overrides ``access_delay`` for that region's hosts);
    ``access_loss``: optional packet loss (percent, each direction) on every host's access link.

    Region j (1-based): switch ``s<j>``, router ``r<j>``, LAN ``fd00:<j>::/64`` and ``10.<j>.0.0/16`` (router
    ``::ffff`` / ``.255.254``), host i at ``fd00:<j>::<i>`` and ``10.<j>.x.y``. Router link number m between
    regions a < b: ``fd00:ff:<a>:<b>::1|2/64`` and ``10.254.<m>.1|2/24``.
    """

    def build(self, n=6, regions=3, delays=None, access_delay=None, host_regions=None, access_ms=None,
              access_loss=None, **_ignored):
        names, rtt = builtin_matrix()
        if isinstance(regions, int):
            if not 1 <= regions <= len(names):
                raise ValueError(f"regions must be 1..{len(names)} (latency model) or a list of names")
            chosen = list(names[:regions])
        else:
            chosen = [str(r) for r in regions]
            unknown = [r for r in chosen if r not in names and delays is None]
            if unknown:
                raise ValueError(f"unknown regions {unknown}; model regions: {', '.join(names)}")
        k = len(chosen)
        if k > 200:
            raise ValueError("at most 200 regions")
        one_way: dict[tuple[str, str], float] = {}
        for a in range(k):
            for b in range(k):
                if a == b:
                    continue
                if delays is None:
                    value = rtt[names.index(chosen[a])][names.index(chosen[b])] / 2
                elif isinstance(delays, dict):
                    value = delays.get((chosen[a], chosen[b]), delays.get((chosen[b], chosen[a])))
                    if value is None:
                        raise ValueError(f"no delay given for {chosen[a]} <-> {chosen[b]}")
                else:
                    value = delays[a][b]
                one_way[(chosen[a], chosen[b])] = float(value)
        self.region_names = chosen
        self.one_way_ms = one_way
        self.host_region: dict[str, str] = {}
        self.access_delay = access_delay

        routers, switches = [], []
        for j, region in enumerate(chosen, start=1):
            switch = self.addSwitch(f"s{j}")
            router = self.addHost(f"r{j}", cls=DualStackHost, ip=f"10.{j}.255.254/16", ip6=f"fd00:{j}::ffff/64",
                                  router=True, routes=[], region=region)
            self.addLink(router, switch)  # router port 0: the region's LAN
            routers.append(router)
            switches.append(switch)
        links = 0
        for a in range(1, k + 1):
            for b in range(a + 1, k + 1):
                links += 1
                if links > 254:
                    raise ValueError("too many inter-region links for the IPv4 plan")
                delay = one_way[(chosen[a - 1], chosen[b - 1])]
                back = one_way[(chosen[b - 1], chosen[a - 1])]
                if abs(delay - back) > 1e-9:
                    raise ValueError(f"asymmetric delays {chosen[a - 1]} <-> {chosen[b - 1]} are not supported")
                self.addLink(f"r{a}", f"r{b}", delay=_ms(delay),
                             params1={"ip6": f"fd00:ff:{a}:{b}::1/64", "ip4": f"10.254.{links}.1/24"},
                             params2={"ip6": f"fd00:ff:{a}:{b}::2/64", "ip4": f"10.254.{links}.2/24"})
                self.nodeInfo(f"r{a}")["routes"] += [(f"fd00:{b}::/64", f"fd00:ff:{a}:{b}::2"),
                                                      (f"10.{b}.0.0/16", f"10.254.{links}.2")]
                self.nodeInfo(f"r{b}")["routes"] += [(f"fd00:{a}::/64", f"fd00:ff:{a}:{b}::1"),
                                                      (f"10.{a}.0.0/16", f"10.254.{links}.1")]
        if host_regions is not None and (len(host_regions) != n or set(host_regions) - set(chosen)):
            raise ValueError("host_regions must name one of the chosen regions for each of the n hosts")
        self.access_ms = {r: float(str(access_delay).removesuffix("ms")) if access_delay else 0.0 for r in chosen}
        self.access_ms.update(access_ms or {})
        for i in range(1, n + 1):
            j = chosen.index(host_regions[i - 1]) + 1 if host_regions is not None else (i - 1) % k + 1
            ip4 = _ip4_host(f"10.{j}.0.0", i)
            host = self.addHost(f"h{i}", cls=DualStackHost, ip=f"{ip4}/16", ip6=f"fd00:{j}::{_hostnum(i)}/64",
                                routes=[("default", f"fd00:{j}::ffff"), ("default", f"10.{j}.255.254")],
                                region=chosen[j - 1])
            self.host_region[f"h{i}"] = chosen[j - 1]
            access = self.access_ms[chosen[j - 1]]
            self.addLink(host, switches[j - 1], **_link_opts(delay=_ms(access) if access else None, loss=access_loss))

    def rtt_ms(self, a: str, b: str) -> float:
        """Expected base RTT between hosts a and b (inter-region delay both ways, plus access delays)."""
        ra, rb = self.host_region[a], self.host_region[b]
        access = 2 * (self.access_ms[ra] + self.access_ms[rb])
        return (0.0 if ra == rb else 2 * self.one_way_ms[(ra, rb)]) + access


class Graph(Topo):
    """One router per vertex of a network graph, one router-to-router link per edge with the edge's one-way
    latency and loss, hosts on their vertex's LAN, and static routes along the paths the latency model counts
    (``experiment/graph.py`` reads the graph and chooses them; this class needs no networkx).

    ``vertices``: names, in order; ``edges``: ``(a, b, one-way ms, loss %)`` between distinct vertices;
    ``next_hop``: ``{(vertex, destination): neighbour}`` for every pair; ``host_vertices``: each host's vertex
    (h1 first); ``access``: optional ``{vertex: (one-way ms, loss %)}`` of the link from each of its hosts to
    its LAN switch.

    Vertex j (1-based): router ``r<j>`` on switch ``s<j>``, LAN ``fd00:<j>::/64`` and ``10.<j>.0.0/16`` (router
    ``::ffff`` / ``.255.254``), host i at ``fd00:<j>::<i>`` and ``10.<j>.x.y``. Edge m (1-based), a first:
    ``fd00:ff:<m, hex>::1|2/64`` and ``10.254.0.0 + 4(m − 1) + 1|2 /30``.
    """

    def build(self, n=2, vertices=(), edges=(), next_hop=None, host_vertices=(), access=None, **_ignored):
        vertices, next_hop, access = list(vertices), dict(next_hop or {}), dict(access or {})
        if not 1 <= len(vertices) <= 250:
            raise ValueError(f"a graph of {len(vertices)} vertices: the emulation takes 1 to 250")
        if len(edges) > 16000:
            raise ValueError(f"{len(edges)} edges: the emulation's address plan takes at most 16000")
        if len(host_vertices) != n or set(host_vertices) - set(vertices):
            raise ValueError("host_vertices must name a vertex of the graph for each of the n hosts")
        index = {name: j for j, name in enumerate(vertices, start=1)}
        self.vertex_names = vertices
        self.host_vertex: dict[str, str] = {}
        self.next_hop = next_hop
        self.access = {name: access.get(name, (0.0, 0.0)) for name in vertices}
        self.edge_ms: dict[frozenset, float] = {}
        for j, name in enumerate(vertices, start=1):
            self.addSwitch(f"s{j}")
            self.addHost(f"r{j}", cls=DualStackHost, ip=f"10.{j}.255.254/16", ip6=f"fd00:{j}::ffff/64", router=True,
                         routes=[], region=name)
            self.addLink(f"r{j}", f"s{j}")  # router port 0: the vertex's LAN
        toward: dict[tuple[str, str], tuple[str, str]] = {}  # (vertex, neighbour) -> the neighbour's addresses
        for m, (a, b, delay_ms, loss_pct) in enumerate(edges, start=1):
            ja, jb = index[a], index[b]
            base = ipaddress.IPv4Address("10.254.0.0") + 4 * (m - 1)
            six = [f"fd00:ff:{m:x}::{end}" for end in (1, 2)]
            four = [str(base + end) for end in (1, 2)]
            self.addLink(f"r{ja}", f"r{jb}", **_link_opts(delay=_ms(delay_ms), loss=loss_pct or None),
                         params1={"ip6": f"{six[0]}/64", "ip4": f"{four[0]}/30"},
                         params2={"ip6": f"{six[1]}/64", "ip4": f"{four[1]}/30"})
            toward[(a, b)], toward[(b, a)] = (six[1], four[1]), (six[0], four[0])
            self.edge_ms[frozenset((a, b))] = float(delay_ms)
        for source in vertices:
            routes = self.nodeInfo(f"r{index[source]}")["routes"]
            for destination in vertices:
                if destination != source:
                    via6, via4 = toward[(source, next_hop[(source, destination)])]
                    j = index[destination]
                    routes += [(f"fd00:{j}::/64", via6), (f"10.{j}.0.0/16", via4)]
        for i, name in enumerate(host_vertices, start=1):
            j = index[name]
            host = self.addHost(f"h{i}", cls=DualStackHost, ip=f"{_ip4_host(f'10.{j}.0.0', i)}/16",
                                ip6=f"fd00:{j}::{_hostnum(i)}/64", region=name,
                                routes=[("default", f"fd00:{j}::ffff"), ("default", f"10.{j}.255.254")])
            self.host_vertex[f"h{i}"] = name
            delay_ms, loss_pct = self.access[name]
            self.addLink(host, f"s{j}", **_link_opts(delay=_ms(delay_ms) if delay_ms else None, loss=loss_pct or None))

    @classmethod
    def of(cls, graph, host_vertices, access_loss: float | None = None) -> Graph:
        """The topology of a network graph (``experiment.graph.NetworkGraph``) with a host at each of
        ``host_vertices``; ``access_loss``: packet loss (percent, each direction) added on every host's link."""
        access = {}
        for name in graph.names:
            delay_ms, loss = graph.access(name)
            access[name] = (delay_ms, round(100 * (1 - (1 - loss) * (1 - (access_loss or 0) / 100)), 6))
        edges = [(edge.a, edge.b, edge.latency_ms, round(100 * edge.loss, 6)) for edge in graph.edges]
        return cls(len(host_vertices), graph.names, edges, graph.next_hop, list(host_vertices), access)

    def rtt_ms(self, a: str, b: str) -> float:
        """Expected base RTT between hosts a and b: both access links and the path's edges, both ways."""
        u, v = self.host_vertex[a], self.host_vertex[b]
        one_way = self.access[u][0] + self.access[v][0]
        while u != v:
            hop = self.next_hop[(u, v)]
            one_way += self.edge_ms[frozenset((u, hop))]
            u = hop
        return 2 * one_way


class HomeNat(Topo):
    """Public hosts plus hosts behind IPv4 NAT routers, IPv6 everywhere.

    ``nat``: "cone" (nftables ``masquerade persistent``: source port kept where free — endpoint-independent
    mapping, address-and-port-dependent filtering, i.e. port-restricted cone) or "symmetric" (``masquerade
    fully-random``: a random port per connection, so a new mapping per destination). ``natted``: hosts behind
    NAT (default n // 2, the last ones); ``per_home``: hosts per home network (default 1).

    Internet: switch s1, public host i at ``10.0.0.<i>/16`` and ``fd00:1::<i>/64``; home k router ``n<k>``:
    WAN ``10.0.255.<k>/16`` and ``fd00:1::ff:<k>/64``, LAN switch ``s<k+1>``, ``192.168.<k>.1/24`` and
    ``fd00:2:<k>::ffff/64``; host i in home k at ``192.168.<k>.<i>/24`` and ``fd00:2:<k>::<i>/64``. Public
    hosts and routers have IPv6 routes to every home prefix; IPv4 into homes only through the NAT mappings.
    """

    def build(self, n=4, nat="cone", natted=None, per_home=1, **_ignored):
        if nat not in NAT_TYPES:
            raise ValueError(f"nat must be one of {NAT_TYPES}, not {nat!r}")
        natted = n // 2 if natted is None else natted
        if not 0 <= natted <= n or per_home < 1:
            raise ValueError("need 0 <= natted <= n and per_home >= 1")
        public = n - natted
        homes = -(-natted // per_home)
        if homes > 250 or n > 250:
            raise ValueError("at most 250 hosts and 250 homes")
        self.nat_type = nat
        self.public_hosts = [f"h{i}" for i in range(1, public + 1)]
        self.home_of: dict[str, int] = {}
        internet = self.addSwitch("s1")
        home_routes6 = [(f"fd00:2:{k}::/64", f"fd00:1::ff:{k}") for k in range(1, homes + 1)]
        for i in range(1, public + 1):
            host = self.addHost(f"h{i}", cls=DualStackHost, ip=f"10.0.0.{i}/16", ip6=f"fd00:1::{i}/64",
                                routes=list(home_routes6))
            self.addLink(host, internet)
        for k in range(1, homes + 1):
            lan = self.addSwitch(f"s{k + 1}")
            router = self.addHost(f"n{k}", cls=DualStackHost, ip=f"10.0.255.{k}/16", ip6=f"fd00:1::ff:{k}/64",
                                  router=True, nat=nat, nat_lan=f"192.168.{k}.0/24",
                                  routes=[r for r in home_routes6 if r[1] != f"fd00:1::ff:{k}"])
            self.addLink(router, internet)  # port 0: WAN
            self.addLink(router, lan, params1={"ip4": f"192.168.{k}.1/24", "ip6": f"fd00:2:{k}::ffff/64"})
        for idx, i in enumerate(range(public + 1, n + 1)):
            k = idx // per_home + 1
            host = self.addHost(f"h{i}", cls=DualStackHost, ip=f"192.168.{k}.{i}/24", ip6=f"fd00:2:{k}::{i}/64",
                                routes=[("default", f"fd00:2:{k}::ffff"), ("default", f"192.168.{k}.1")])
            self.home_of[f"h{i}"] = k
            self.addLink(host, f"s{k + 1}")


topos = {"pair": Pair, "flatlan": FlatLan, "regions": Regions, "graph": Graph, "homenat": HomeNat}
