"""Link shaping: how each topology link's delay, jitter, loss and rate are emulated on this kernel.

Per direction: netem on both ends when the kernel has it; otherwise a relay node is inserted into the link
(``A ── x<k> ── B``) running ``python -m topologies.relay``; otherwise (relay disabled) the property is recorded
as not emulated. Rate: htb (else tbf, else netem's own ``rate``) on the egress of both ends — with a relay, on
the relay's two interfaces — or the relay's token bucket when no qdisc works. ``LinkPlan.report()`` says which
method emulates each property, with the values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from topologies.probe import Capability


def parse_ms(value) -> float:
    """Delay/jitter as Mininet writes them ('20ms', '500us', '0.1s') or a number of ms; None -> 0."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*(us|ms|s)?\s*", str(value))
    if not match:
        raise ValueError(f"cannot parse a delay from {value!r}")
    number = float(match.group(1))
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}[match.group(2)]


@dataclass
class LinkPlan:
    """One topology link: what it asks for (delay, jitter, loss, rate, queue) and how each is emulated."""

    index: int
    node1: str
    node2: str
    port1: int | None
    port2: int | None
    params1: dict
    params2: dict
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    rate_mbit: float = 0.0
    queue: int | None = None
    delay: dict = field(default_factory=lambda: {"method": "none"})
    loss: dict = field(default_factory=lambda: {"method": "none"})
    rate: dict = field(default_factory=lambda: {"method": "none"})
    qdisc_on: list[str] = field(default_factory=list)  # topo nodes whose link-side interface gets the qdiscs
    relay: str | None = None  # topo name of the inserted relay node
    relay_rate: bool = False
    relay_info: dict = field(default_factory=dict)
    interfaces: list[str] = field(default_factory=list)

    def report(self) -> dict:
        """How this link's properties are emulated, JSON-serialisable (for the run manifest)."""
        entry = {
            "link": f"{self.node1}-{self.node2}",
            "nodes": [self.node1, self.node2],
            "interfaces": list(self.interfaces),
            "configured": {"delay_ms": self.delay_ms, "jitter_ms": self.jitter_ms, "loss_pct": self.loss_pct,
                           "rate_mbit": self.rate_mbit or None, "queue": self.queue},
            "delay": dict(self.delay),
            "loss": dict(self.loss),
            "rate": dict(self.rate),
        }
        if self.relay:
            entry["relay"] = dict(self.relay_info)
        return entry


def plan_links(topo, caps: dict[str, Capability], *, use_relay: bool = True, force_relay: bool = False
               ) -> list[LinkPlan]:
    """A plan for every link of ``topo`` (in the topology's order) on a kernel with capabilities ``caps``;
    ``force_relay`` uses the relay even where netem works (for testing it)."""

    def has(name: str) -> bool:
        cap = caps.get(name)
        return bool(cap and cap.available)

    netem = has("netem") and not force_relay
    relay_ok = use_relay and has("relay")
    plans = []
    for index, (n1, n2, info) in enumerate(topo.links(sort=False, withInfo=True), start=1):
        info = dict(info)
        plan = LinkPlan(index, n1, n2, info.get("port1"), info.get("port2"),
                         dict(info.get("params1") or {}), dict(info.get("params2") or {}))
        plan.delay_ms = parse_ms(info.get("delay"))
        plan.jitter_ms = parse_ms(info.get("jitter"))
        plan.loss_pct = float(info.get("loss") or 0.0)
        plan.rate_mbit = float(info.get("bw") or 0.0)
        plan.queue = int(info["max_queue_size"]) if info.get("max_queue_size") else None
        if not 0 <= plan.loss_pct <= 100:
            raise ValueError(f"link {n1}-{n2}: loss is a percentage, 0..100")
        want_delay = plan.delay_ms > 0 or plan.jitter_ms > 0
        want_loss = plan.loss_pct > 0
        want_rate = plan.rate_mbit > 0
        values_delay = {"value_ms": plan.delay_ms, "jitter_ms": plan.jitter_ms, "per": "direction"}
        values_loss = {"value_pct": plan.loss_pct, "per": "direction"}
        values_rate = {"value_mbit": plan.rate_mbit, "per": "direction"}
        qdisc_rate = "htb" if has("htb") else "tbf" if has("tbf") else None
        if want_delay or want_loss:
            if netem:
                plan.qdisc_on = [n1, n2]
                if want_delay:
                    plan.delay = {"method": "netem", **values_delay, "where": "egress of both ends"}
                if want_loss:
                    plan.loss = {"method": "netem", **values_loss, "where": "egress of both ends"}
                if want_rate:
                    method = qdisc_rate or "netem-rate"
                    plan.rate = {"method": method, **values_rate, "where": "egress of both ends"}
            elif relay_ok:
                plan.relay = f"x{index}"
                where = f"relay node x{index} (python -m topologies.relay)"
                if want_delay:
                    plan.delay = {"method": "relay", **values_delay, "where": where}
                if want_loss:
                    plan.loss = {"method": "relay", **values_loss, "where": where}
                if want_rate:
                    if qdisc_rate:
                        plan.qdisc_on = [plan.relay]
                        plan.rate = {"method": qdisc_rate, **values_rate,
                                     "where": f"egress of both interfaces of relay node x{index}"}
                    else:
                        plan.relay_rate = True
                        plan.rate = {"method": "relay-token-bucket", **values_rate, "where": where}
            else:
                why = ("netem unavailable (" + caps.get("netem", Capability(False, "not probed")).detail
                       + ") and " + ("the relay is disabled" if not use_relay else
                                     "the relay is unavailable: " + caps["relay"].detail))
                if want_delay:
                    plan.delay = {"method": "not-emulated", **values_delay, "reason": why}
                if want_loss:
                    plan.loss = {"method": "not-emulated", **values_loss, "reason": why}
                if want_rate:
                    if qdisc_rate:
                        plan.qdisc_on = [n1, n2]
                        plan.rate = {"method": qdisc_rate, **values_rate, "where": "egress of both ends"}
                    else:
                        plan.rate = {"method": "not-emulated", **values_rate, "reason": "no htb/tbf"}
        elif want_rate:
            if qdisc_rate:
                plan.qdisc_on = [n1, n2]
                plan.rate = {"method": qdisc_rate, **values_rate, "where": "egress of both ends"}
            elif netem:
                plan.qdisc_on = [n1, n2]
                plan.rate = {"method": "netem-rate", **values_rate, "where": "egress of both ends"}
            elif relay_ok:
                plan.relay = f"x{index}"
                plan.relay_rate = True
                plan.rate = {"method": "relay-token-bucket", **values_rate,
                             "where": f"relay node x{index} (python -m topologies.relay)"}
            else:
                plan.rate = {"method": "not-emulated", **values_rate, "reason": "no htb, tbf, netem or relay"}
        plans.append(plan)
    return plans


def tc_commands(plan: LinkPlan, intf: str) -> list[str]:
    """The tc commands that shape ``plan``'s link on interface ``intf`` (one end, or one side of its relay)."""
    cmds = []
    parent = "root"
    rate_method = plan.rate.get("method")
    netem_args = []
    if plan.delay.get("method") == "netem":
        netem_args.append(f"delay {plan.delay_ms:g}ms")
        if plan.jitter_ms:
            netem_args.append(f"{plan.jitter_ms:g}ms")
    if plan.loss.get("method") == "netem":
        netem_args.append(f"loss {plan.loss_pct:g}%")
    if plan.queue and netem_args:
        netem_args.append(f"limit {plan.queue}")
    if rate_method == "htb":
        cmds.append(f"tc qdisc replace dev {intf} root handle 5: htb default 1")
        cmds.append(f"tc class add dev {intf} parent 5: classid 5:1 htb rate {plan.rate_mbit:g}mbit burst 15k")
        parent = "parent 5:1"
    elif rate_method == "netem-rate":
        netem_args.append(f"rate {plan.rate_mbit:g}mbit")
    if netem_args:
        cmds.append(f"tc qdisc replace dev {intf} {parent} handle 10: netem {' '.join(netem_args)}")
        parent = "parent 10:1"
    if rate_method == "tbf":
        latency = max(50.0, 15000 * 8 / (plan.rate_mbit * 1000))
        cmds.append(f"tc qdisc replace dev {intf} {parent} handle 20: tbf rate {plan.rate_mbit:g}mbit "
                    f"burst 15k latency {latency:g}ms")
    return cmds


def relay_options(plan: LinkPlan, seed: int) -> list[str]:
    """The ``python -m topologies.relay`` options (after its two interfaces) that emulate ``plan``'s link."""
    options = []
    if plan.delay.get("method") == "relay":
        options += ["--delay-ms", f"{plan.delay_ms:g}"]
        if plan.jitter_ms:
            options += ["--jitter-ms", f"{plan.jitter_ms:g}"]
    if plan.loss.get("method") == "relay":
        options += ["--loss", f"{plan.loss_pct:g}"]
    if plan.relay_rate:
        options += ["--rate-mbit", f"{plan.rate_mbit:g}"]
    if plan.queue:
        options += ["--queue", str(plan.queue)]
    return [*options, "--seed", str(seed)]
