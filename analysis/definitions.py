"""What each success criterion means: its name, default target and comparison, and the definitions that
reports quote (docs/results.md says the same in prose)."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from experiment.criteria import DEFAULT_TARGETS, MCP_CRITERIA, PUBSUB_CRITERIA

FORMATION_DEFINITION = (
    "Formation is reached when every checked live node has finished bootstrapping and lookups for one "
    "random key, started from all of them at the same moment, all return exactly the true k closest live "
    "peers; the formation time is when the last of those lookups returned (the first `formation` row with "
    "`value == 1` and `ok == 1`). Routing-table completeness is shown beside it: the share of checked live "
    "nodes each of whose buckets holds min(k, live peers in the bucket's range) live peers."
)


DELIVERY_DEFINITION = (
    "An eligible (live) subscriber of a message is an honest node subscribed to the message's topic that was "
    "up continuously from `measure.delivery_settle` seconds before the publish until "
    "`measure.delivery_deadline` seconds after it: a node that went down or joined in that interval, an "
    "attacker node (`pubsub.attackers`) and the publisher itself do not count. A message is delivered to "
    "such a subscriber if the subscriber first received it within the deadline. Each message has one "
    "`delivery` row, written once its deadline has passed (messages published less than the deadline "
    "before the end of the run have none); the delivery rate is the sum of their `value` (eligible "
    "subscribers reached in time) over the sum of their `count` (eligible subscribers). Delivery latency is "
    "the time from publish to first reception, over `deliver` rows with `ok == 1`: receptions at honest "
    "subscribers that had been up since at least `delivery_settle` seconds before the publish, whether "
    "or not the reception came within the deadline."
)

# What event times count, by the manifest's runtime: the simulator's clock, or real seconds since an emulated
# run's scenario started.
CLOCKS = {"sim": "simulated", "emulation": "emulated"}


def clock(runtime: str | None) -> str:
    """How a report names a run's time: "simulated", "emulated", or "scenario" when the manifest does not say."""
    return CLOCKS.get(runtime, "scenario") if runtime else "scenario"


OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    unit: str
    target: float
    op: str

    def describe(self, runtime: str | None) -> str:
        """The description with its time named for the run's runtime."""
        return self.description.replace("{Clock}", clock(runtime).capitalize())


SPECS = {
    spec.name: spec
    for spec in (
        Spec(
            "formation_time",
            "{Clock} seconds from t=0 until lookups for one random key from every checked live node "
            "(all bootstrapped) returned exactly the true k closest live peers; fails if never reached.",
            "s",
            DEFAULT_TARGETS["formation_time"],
            "<",
        ),
        Spec(
            "lookup_p99",
            "99th percentile of the latency of the user-facing lookups, successful or not (linear "
            "interpolation between samples): gets (until the first valid record), find_peer (until the "
            "target's addresses) and find_providers (until the first provider). A run with none of them is "
            "judged on its FIND_NODE lookups. FIND_NODE convergence (until the k closest live peers are "
            "known: the lookup phase of puts, provides and refreshes) is reported beside it.",
            "s",
            DEFAULT_TARGETS["lookup_p99"],
            "<",
        ),
        Spec(
            "lookup_success",
            "Share of the user-facing lookups that returned what was asked for: the newest version put, the "
            "target's addresses, a provider (ok == 1); without any, the share of FIND_NODE lookups that "
            "found the closest live peer to the key.",
            "share",
            DEFAULT_TARGETS["lookup_success"],
            ">=",
        ),
        Spec(
            "put_get_success",
            "Share of gets, for keys put earlier and under churn, that returned the newest stored version "
            "(ok == 1).",
            "share",
            DEFAULT_TARGETS["put_get_success"],
            ">=",
        ),
        Spec(
            "delivery_rate",
            "Share of (message, eligible subscriber) pairs in which the subscriber first received the message "
            "within `measure.delivery_deadline` s of the publish: the sum of `delivery` rows' value over the "
            "sum of their count. Eligible: an honest node subscribed to the message's topic and up "
            "continuously from `measure.delivery_settle` s before the publish until the deadline (not the "
            "publisher, not an attacker, not a node that went down or joined in between); messages whose "
            "deadline had not passed when the run ended are not counted.",
            "share",
            DEFAULT_TARGETS["delivery_rate"],
            ">=",
        ),
        Spec(
            "delivery_p99",
            "99th percentile of the time from publish to first reception over `deliver` rows with ok == 1 "
            "(receptions at honest subscribers up since at least `measure.delivery_settle` s before the "
            "publish, within the deadline or not; linear interpolation between samples).",
            "s",
            DEFAULT_TARGETS["delivery_p99"],
            "<",
        ),
        Spec(
            "scaling",
            "Wall-clock seconds per simulated message at the largest node count divided by the same at the "
            "smallest (each point's manifest perf: wall_seconds / messages).",
            "ratio",
            DEFAULT_TARGETS["scaling"],
            "<=",
        ),
        Spec(
            "mcp_request_p99",
            "99th percentile of the end-to-end latency of MCP requests (`mcp` rows: a client's tools/call of "
            "forward_to_peer or aggregate_results, through discovery, the remote peers' run_inference and back), "
            "answered or not (linear interpolation between samples).",
            "s",
            DEFAULT_TARGETS["mcp_request_p99"],
            "<",
        ),
        Spec(
            "mcp_success",
            "Share of MCP requests (`mcp` rows) answered without an error.",
            "share",
            DEFAULT_TARGETS["mcp_success"],
            ">=",
        ),
    )
}
DELIVERY_CRITERIA = PUBSUB_CRITERIA
RUN_CRITERIA = ("formation_time", "lookup_p99", "lookup_success", "put_get_success", *DELIVERY_CRITERIA,
                *MCP_CRITERIA)
