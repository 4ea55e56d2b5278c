"""The network model of a scenario in words, for the "Model and definitions" section of a report."""

from __future__ import annotations

from analysis.definitions import clock
from analysis.formats import fmt, given
from analysis.load import setting


def _distribution(spec: object) -> str:
    if not isinstance(spec, dict):
        return given(spec)
    params = ", ".join(f"{key} {given(value)}" for key, value in spec.items() if key != "distribution")
    return f"{spec.get('distribution', '?')} ({params})" if params else str(spec.get("distribution"))


def _shares(spec: object) -> str:
    if not isinstance(spec, dict) or not spec:
        return given(spec)
    return ", ".join(f"{key} {value:.0%}" if isinstance(value, int | float) else f"{key} {value}"
                     for key, value in spec.items())


def model_lines(scenario: dict, runtime: str | None) -> list[str]:
    """Human-readable network model assumptions from a resolved scenario (times named for the runtime)."""
    nodes, network, dht = scenario.get("nodes"), scenario.get("network"), scenario.get("dht")
    latency, churn, workload = setting(network, "latency"), scenario.get("churn"), scenario.get("workload")
    model = setting(latency, "model")
    latency_text = given(model)
    if model == "matrix":
        latency_text += f" (RTT matrix {given(setting(latency, 'matrix'))})"
    elif model == "graph":
        latency_text += (f" (network graph {given(setting(latency, 'graph'))}, the path of least latency between "
                         f"vertices; nodes at vertices: {_shares(setting(nodes, 'regions'))})")
    elif model == "regions":
        latency_text += f" (built-in RTT table; regions: {_shares(setting(nodes, 'regions'))})"
    access = setting(latency, "access")
    if isinstance(access, list | tuple) and len(access) == 2:
        access_text = (f"uniform between {access[0] * 1000:g} and {access[1] * 1000:g} ms one-way, "
                       "drawn once per node")
    else:
        access_text = given(access)
    lines = [
        f"Nodes: {given(setting(nodes, 'count'))} ({given(setting(nodes, 'bootstrap'))} bootstrap, joining "
        f"uniformly over the first {given(setting(nodes, 'join_over'), ' s')}); warm-up "
        f"{given(scenario.get('warmup'), ' s')}, measured duration "
        f"{given(scenario.get('duration'), ' s')}.",
        f"Latency model: {latency_text}.",
        f"Jitter: {given(setting(latency, 'jitter'))} (relative standard deviation of each message's one-way "
        "latency).",
        f"Access latency: {access_text}.",
        f"Loss: {given(setting(network, 'loss'))} (probability that a message is lost).",
    ]
    if isinstance(churn, dict) and churn:
        lines.append(
            f"Churn: session lengths {_distribution(churn.get('session'))}, offline times "
            f"{_distribution(churn.get('offline'))}, graceful share of departures "
            f"{given(churn.get('graceful'))} (the rest crash silently); times in seconds."
        )
    else:
        lines.append("Churn: none (static network).")
    dht_parts = [f"k = {given(setting(dht, 'k'))}", f"alpha = {given(setting(dht, 'alpha'))}",
                 f"d = {given(setting(dht, 'disjoint_paths'))} disjoint paths"]
    for key, label, unit in (("request_timeout", "request timeout", " s"),
                             ("slow_after", "lookups stop waiting for a peer after", " s"),
                             ("record_ttl", "record TTL", " s"),
                             ("republish_interval", "republish every", " s"),
                             ("refresh_interval", "refresh every", " s"), ("wire", "wire", "")):
        if setting(dht, key) is not None:
            dht_parts.append(f"{label} {setting(dht, key)}{unit}")
    lines.append("DHT: " + ", ".join(dht_parts) + ".")
    if isinstance(workload, dict):
        lines.append(
            f"Workload per live node per {clock(runtime)} minute: {given(workload.get('lookup'))} lookups, "
            f"{given(workload.get('put'))} puts, {given(workload.get('get'))} gets; values of "
            f"{given(workload.get('value_size'), ' bytes')}."
        )
    pubsub = scenario.get("pubsub")
    if isinstance(pubsub, dict):
        lines.append(_pubsub_line(pubsub))
    adversary = scenario.get("adversary")
    if isinstance(adversary, dict):
        lines.append(_adversary_line(adversary))
    nat = [f"{key} {_shares(setting(nodes, key))}" for key in ("nat", "address_families", "transition")
           if setting(nodes, key)]
    if nat:
        lines.append("Addressing: " + "; ".join(nat) + ".")
    return lines


def _pubsub_line(pubsub: dict) -> str:
    router = setting(pubsub, "router")
    router_text = ", ".join(f"{key} {given(setting(router, key))}" for key in ("d", "d_lo", "d_hi", "d_lazy",
                                                                              "heartbeat_interval"))
    scoring, attackers = pubsub.get("scoring"), pubsub.get("attackers")
    other = ", ".join(f"{key} {given(value)}" for key, value in pubsub.items()
                      if key not in ("scoring", "attackers", "router", "score") and not isinstance(value, dict))
    return (f"Pub-sub (GossipSub): {other}; router {router_text}; peer scoring "
            f"{fmt(scoring, 'flag') if isinstance(scoring, bool) else given(scoring)}; attackers "
            f"{fmt(attackers, 'share') if isinstance(attackers, int | float) else given(attackers)} of the nodes"
            + _attack_text(setting(pubsub, "attack")) + ".")


def _adversary_line(adversary: dict) -> str:
    behaviours = setting(adversary, "behaviours")
    eclipse, writes = setting(adversary, "eclipse"), setting(adversary, "writes")
    text = (f"Adversary (sim/adversary.py): {fmt(setting(adversary, 'share'), 'share')} of the nodes, "
            + (", ".join(behaviours) if isinstance(behaviours, list) else given(behaviours)))
    if isinstance(eclipse, dict):
        text += (f"; IDs placed around {given(setting(eclipse, 'keys'))} victim keys with a budget of "
                 f"2^{given(setting(eclipse, 'prefix_bits'))} key draws each")
    if writes:
        text += f"; a write flood of {given(writes)} PUT_VALUEs a second each"
    return text + "."


def _attack_text(attack: object) -> str:
    """What the pub-sub attackers do (sim/adversary.py), when they do more than drop."""
    kind = setting(attack, "kind")
    if not isinstance(kind, str) or kind == "drop":
        return ""
    detail = {"flood": f", {given(setting(attack, 'spam'))} invalid messages a second each",
              "flash": f", honest until {given(setting(attack, 'at'), ' s')}"}.get(kind, "")
    return f" ({kind}{detail})"
