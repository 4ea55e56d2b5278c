"""User-space data-plane benchmark: packets/s, Mbit/s and added latency per transition mechanism.

    .venv/bin/python benchmarks/bench_tunnels.py [--rounds 5] [--packets 20000] [--size 1400]
    sudo .venv/bin/python benchmarks/bench_tunnels.py --netns [--seconds 1] [--pings 20]

Endpoint mode (no root): each mechanism's sans-IO endpoint handles ``--packets`` pre-built UDP
packets of ``--size`` bytes in one process: the host side taking them from its stack (encapsulation
or translation) and the infrastructure side taking what that produced. Rounds go round-robin over
the mechanisms so a busy machine slows them alike; the median round is printed, as packets/s,
Mbit/s of the packets handled and microseconds per packet (the latency one endpoint adds).

Namespace mode (root): each mechanism's access network of tests/tunnels/scenarios (host, its
infrastructure element, a far host; two user-space planes on the path) against the kernel's own
forwarding over the same three namespaces ("native"), interleaved: the ping RTT (median of
``--pings``) and the UDP rate a sender in the host gets through to a receiver beyond for
``--seconds`` (1200-byte datagrams, as fast as one Python sender writes).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2pnode.transition import addresses, encap, mapping, packets, teredo, xlat  # noqa: E402
from p2pnode.transition.endpoint import IP4  # noqa: E402

FAR4, FAR6 = IPv4Address("198.51.100.80"), IPv6Address("3fff:ffff::99")


def udp6(src: IPv6Address, dst: IPv6Address, size: int) -> bytes:
    payload = bytes(size - 48)
    l4 = (1000).to_bytes(2, "big") + (2000).to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big") + b"\0\0" \
        + payload
    csum = packets.checksum(packets.pseudo6(src.packed, dst.packed, 17, len(l4)), l4)
    return packets.build_ipv6(src.packed, dst.packed, 17, l4[:6] + csum.to_bytes(2, "big") + l4[8:])


def udp4(src: IPv4Address, dst: IPv4Address, size: int, sport: int = 1000) -> bytes:
    payload = bytes(size - 28)
    l4 = sport.to_bytes(2, "big") + (2000).to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big") + b"\0\0" \
        + payload
    csum = packets.checksum(packets.pseudo4(src.packed, dst.packed, 17, len(l4)), l4)
    return packets.build_ipv4(src.packed, dst.packed, 17, l4[:6] + csum.to_bytes(2, "big") + l4[8:])


def pairs(size: int):
    """(mechanism, host-side endpoint, packet it takes from its stack, infrastructure endpoint, how the
    host side's output reaches the infrastructure side)."""
    rng = random.Random(1)
    rule = mapping.MapRule(IPv6Network("2001:db8::/40"), IPv4Network("192.0.2.0/24"), 16)
    ce = mapping.derive_ce(rule, "2001:db8:12:3400::/56")
    lan = IPv4Address("192.168.1.10")
    h4 = IPv4Address("192.0.2.10")
    six = encap.sixtofour(h4, relay=IPv4Address("192.0.2.1"))
    domain = addresses.SixRdDomain(IPv6Network("2001:db8::/32"), 8, (IPv4Address("10.0.0.1"),))
    ce6rd = encap.sixrd(domain, IPv4Address("10.100.100.1"))
    isa = encap.isatap(IPv4Address("10.0.0.5"), IPv6Network("2001:db8:5::/64"), router=IPv4Address("10.0.0.1"))
    o4a, o4b = encap.sixover4(IPv4Address("10.1.0.1")), encap.sixover4(IPv4Address("10.1.0.2"))
    client = teredo.TeredoClient(IPv4Address("192.0.2.1"), (IPv4Address("192.0.2.1"), 3545), rng)
    client.address = addresses.TeredoAddress(IPv4Address("192.0.2.1"), 0, 40000, h4)
    aftr6 = IPv6Address("2001:db8:1::1")
    b4_6 = IPv6Address("2001:db8:1::2")
    dmr = IPv6Network("2001:db8:ffff::/64")
    return [
        ("6to4", six, udp6(six.own6, FAR6, size), encap.sixtofour(IPv4Address("192.0.2.1"), role="relay"), h4),
        ("6rd", ce6rd, udp6(ce6rd.own6, FAR6, size), encap.sixrd(domain, IPv4Address("10.0.0.1"), role="br"),
         IPv4Address("10.100.100.1")),
        ("isatap", isa, udp6(isa.own6, FAR6, size),
         encap.isatap(IPv4Address("10.0.0.1"), IPv6Network("2001:db8:5::/64"), role="router"), IPv4Address("10.0.0.5")),
        ("6over4", o4a, udp6(o4a.own6, o4b.own6, size), o4b, IPv4Address("10.1.0.1")),
        ("teredo", client, udp6(client.address.address(), FAR6, size), teredo.TeredoRelay(), (h4.packed, 40000)),
        ("dslite", encap.DsLiteB4(aftr6), udp4(IPv4Address("192.0.0.2"), FAR4, size),
         encap.DsLiteAftr([IPv4Address("203.0.113.1")], rng), b4_6.packed),
        ("map-e", encap.MapECe(ce, aftr6, rng), udp4(lan, FAR4, size),
         encap.MapEBr((rule,), aftr6, IPv4Address("198.51.100.1")), ce.ipv6.packed),
        ("map-t", xlat.MapTCe(ce, dmr, rng), udp4(lan, FAR4, size),
         xlat.MapTBr((rule,), dmr, IPv4Address("198.51.100.1"), aftr6), None),
        ("464xlat", xlat.Clat(IPv6Address("2001:db8:c::64"), IPv6Network("64:ff9b::/96")),
         udp4(IPv4Address("192.0.0.1"), FAR4, size),
         xlat.Plat(IPv6Network("64:ff9b::/96"), [IPv4Address("203.0.113.1")], aftr6, rng), None),
    ]


def wire(out, source):
    """The infrastructure side's input for one host-side output: (method, packet, source)."""
    if out.via == IP4:
        return "from_net", packets.build_ipv4(source.packed, out.dest, 41, out.data), None
    if source is None:  # translators: the next one takes it from its TUN device
        return "from_tun", out.data, None
    return "from_net", out.data, source


def measure(host, packet, infra, source, count: int) -> tuple[float, float]:
    """Seconds per packet for the host side and for the infrastructure side."""
    start = time.perf_counter()
    outs = [host.from_tun(packet) for _ in range(count)]
    host_time = (time.perf_counter() - start) / count
    # sources differ per packet on the NAT'd paths: each host packet is a new flow half the time
    inputs = [wire(o[0], source) for o in outs if o]
    if len(inputs) != count:
        raise RuntimeError(f"{host.mechanism}: the host side dropped packets: {dict(host.drops)}")
    start = time.perf_counter()
    for method, data, src in inputs:
        result = getattr(infra, method)(data, src) if method == "from_net" else infra.from_tun(data)
        if not result:
            raise RuntimeError(f"{infra.mechanism}: the infrastructure side dropped: {dict(infra.drops)}")
    return host_time, (time.perf_counter() - start) / count


def endpoint_mode(args) -> None:
    rows = {name: ([], []) for name, *_ in pairs(args.size)}
    for _ in range(args.rounds):
        for name, host, packet, infra, source in pairs(args.size):
            h, i = measure(host, packet, infra, source, args.packets)
            rows[name][0].append(h)
            rows[name][1].append(i)
    print(f"one user-space endpoint, {args.size}-byte packets, median of {args.rounds} rounds of {args.packets}")
    print(f"{'mechanism':10} {'side':14} {'packets/s':>10} {'Mbit/s':>8} {'us/packet':>10}")
    for name, (hs, infras) in rows.items():
        for side, times in (("host", hs), ("infrastructure", infras)):
            t = statistics.median(times)
            print(f"{name:10} {side:14} {1 / t:10.0f} {args.size * 8 / t / 1e6:8.0f} {t * 1e6:10.1f}")


# ---- namespaces --------------------------------------------------------------------------------

RECEIVE = """import socket,sys,time
s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)
s.bind((sys.argv[1],9999)); s.settimeout(1.0); n=0; b=0
print('ready',flush=True)
end=None
while True:
    try: d=s.recv(2048)
    except socket.timeout:
        if end is not None: break
        continue
    if end is None: end=time.monotonic()+float(sys.argv[2])
    n+=1; b+=len(d)
    if time.monotonic()>end: break
print(n,b,flush=True)"""
SEND = """import socket,sys,time
s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)
s.setblocking(False); d=bytes(1200); end=time.monotonic()+float(sys.argv[2])+0.5
while time.monotonic()<end:
    try: s.sendto(d,(sys.argv[1],9999))
    except BlockingIOError: pass
    except OSError: time.sleep(0.0001)"""


def netns_round(name: str, seconds: float, pings: int) -> tuple[float, float, float]:
    from tests.tunnels import scenarios
    from tests.tunnels.netns import Net

    net = Net("h", "i", "f")
    try:
        target = getattr(scenarios, name)(net) if name.startswith("native") else scenarios.SCENARIOS[name](net)
        scenarios.settle()
        ok, out = net.ping_output("h", target, count=pings)
        rtts = [float(part.split("=")[1]) for part in out.split() if part.startswith("time=")]
        receiver = scenarios.RECEIVER.get(name, "f")
        recv = subprocess.Popen(["ip", "netns", "exec", net.ns[receiver], sys.executable, "-c", RECEIVE, target,
                                 str(seconds)], stdout=subprocess.PIPE, text=True)
        recv.stdout.readline()
        subprocess.run(["ip", "netns", "exec", net.ns["h"], sys.executable, "-c", SEND, target, str(seconds)],
                       timeout=seconds + 30)
        count, size = (int(x) for x in recv.communicate(timeout=seconds + 30)[0].split())
        return statistics.median(rtts) if rtts else float("nan"), count / seconds, size * 8 / seconds / 1e6
    finally:
        net.close()


def netns_mode(args) -> None:
    from p2pnode.tunnels import kernel

    names = ["native4", "native6", "6to4", "6rd", "isatap", "6over4", "teredo", "dslite", "map-e", "map-t",
             "464xlat"]
    results = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            results[name].append(netns_round(name, args.seconds, args.pings))
    print(f"kernel data planes here: {kernel.probe()}")
    print(f"three namespaces, two user-space planes on the path; median of {args.rounds} rounds")
    print(f"{'mechanism':10} {'RTT ms':>8} {'+ms vs native':>14} {'packets/s':>10} {'Mbit/s':>8}")
    for name in names:
        rtt = statistics.median(r[0] for r in results[name])
        base = statistics.median(r[0] for r in results["native6" if name in
                                                      ("6to4", "6rd", "isatap", "6over4", "teredo", "native6")
                                                      else "native4"])
        pps = statistics.median(r[1] for r in results[name])
        mbit = statistics.median(r[2] for r in results[name])
        print(f"{name:10} {rtt:8.3f} {rtt - base:14.3f} {pps:10.0f} {mbit:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", action="store_true", help="real namespaces (root)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1400)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--pings", type=int, default=20)
    args = parser.parse_args()
    netns_mode(args) if args.netns else endpoint_mode(args)


if __name__ == "__main__":
    main()
