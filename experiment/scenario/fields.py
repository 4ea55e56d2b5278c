"""Field types of the scenario schema: the ranges every number has, the reserved and modelled choices, and the
base model of every section (a null section means its defaults)."""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)
from pydantic_core import PydanticCustomError

from experiment.criteria import CRITERIA
from experiment.scenario.errors import (
    got,
)
from p2pnode.config import KAD_PRESETS
from p2pnode.nodeconfig import TRANSITION_MECHANISMS as TRANSITIONS
from p2pnode.transition.profiles import NAT_TYPES
from p2pnode.userinput import quote

SHARE_TOLERANCE = 1e-6

# Reserved fields: every value a later issue will model is named (so a typo is told apart from a
# value that is merely not modelled yet); only the first group of each is accepted today.
ADDRESS_FAMILIES = ("dual", "ipv6", "ipv4")
_MODELLED = {
    "nat": (NAT_TYPES, "every NAT type is modelled"),
    "address_families": (("dual", "ipv6"), "IPv4-only support lands"),
    "transition": (TRANSITIONS, "every mechanism is modelled"),
}

DISTRIBUTIONS = ("exponential", "weibull", "lognormal")
LATENCY_MODELS = ("regions", "matrix", "graph")
WIRE_MODES = ("objects", "exact")
KAD_PRESET_NAMES = tuple(KAD_PRESETS)
ARRIVALS = ("poisson", "periodic")
DISCOVERY = ("dht", "random")
# What a malicious node does (sim/adversary.py): drop every DHT request but PING; answer lookups with the
# colluding nodes closest to the key; return the oldest version of a record it holds; return a forged record.
BEHAVIOURS = ("drop", "collude", "stale", "forge")
# What pub-sub attackers do (sim/adversary.py): drop what they should forward; drop and send invalid messages
# (a Sybil flood); forward honestly until `at`, then all drop at once (covert flash); surround one publisher.
GOSSIP_ATTACKS = ("drop", "flood", "flash", "eclipse")


# --------------------------------------------------------------------------------------------
# Field types

# Every number has a range a real experiment can use: beyond it a value is a typo (or an attack) whose run would
# overflow, never end or never fit in memory. What the values cost together (events per second, memory for N
# nodes) is checked against the machine before a run (experiment.feasibility).
MAX_NODES = 1_000_000
MAX_TIME = 365 * 86400.0  # a year: the longest span (simulated seconds) any time field may give
MAX_TIMEOUT = 3600.0  # timeouts and waits: an hour
MAX_RATE = 600.0  # operations per live node per minute (ten a second)
MAX_COUNT = 1000  # protocol degrees and list lengths (mesh degree, bucket size, peers kept ...)


def _between(lo: float, hi: float, *, open_lo: bool = False) -> Any:
    return Field(gt=lo, le=hi) if open_lo else Field(ge=lo, le=hi)


Float = Annotated[float, Strict()]  # strict: ints are accepted, strings and booleans are not
Flag = Annotated[bool, Strict()]
Span = Annotated[float, Strict(), _between(0, MAX_TIME, open_lo=True)]  # a duration, TTL or mean time
NonNegSpan = Annotated[float, Strict(), _between(0, MAX_TIME)]
Timeout = Annotated[float, Strict(), _between(0, MAX_TIMEOUT, open_lo=True)]
NonNegTimeout = Annotated[float, Strict(), _between(0, MAX_TIMEOUT)]
Rate = Annotated[float, Strict(), _between(0, MAX_RATE)]
Count = Annotated[int, Strict(), _between(0, MAX_COUNT)]
PosCount = Annotated[int, Strict(), _between(1, MAX_COUNT)]
Share = Annotated[float, Strict(), _between(0, 1)]
NodeCount = Annotated[int, Strict(), _between(2, MAX_NODES)]
Threshold = Annotated[float, Strict(), _between(-1e6, 1e6)]


def _choice(allowed: Sequence[str]) -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, str) and value in allowed:
            return value
        raise PydanticCustomError(
            "choice", "{got} is not one of {allowed}", {"got": got(value), "allowed": ", ".join(allowed)}
        )

    return BeforeValidator(check)


def _modelled(field: str) -> AfterValidator:
    accepted, feature = _MODELLED[field]

    def check(value: str) -> str:
        if value not in accepted:
            only = " or ".join(repr(a) for a in accepted)
            raise PydanticCustomError(
                "not_modelled",
                "{value} is not modelled yet (only {only} until {feature})",
                {"value": repr(value), "only": only, "feature": feature},
            )
        return value

    return AfterValidator(check)


def _sum_to_one(shares: dict[str, float]) -> dict[str, float]:
    if not shares:
        raise PydanticCustomError("shares", "needs at least one entry (shares that sum to 1)")
    total = math.fsum(shares.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise PydanticCustomError("shares", "shares sum to {total}, not 1", {"total": f"{total:.6g}"})
    return shares


def _check_name(name: str) -> str:
    if not name or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        raise PydanticCustomError(
            "name", "{got} may contain only letters, digits, '-' and '_'", {"got": quote(name)}
        )
    return name


NatType = Annotated[
    Literal[NAT_TYPES],
    _choice(NAT_TYPES),
    _modelled("nat"),
]
AddressFamily = Annotated[
    Literal[ADDRESS_FAMILIES], _choice(ADDRESS_FAMILIES), _modelled("address_families")
]
Transition = Annotated[
    Literal[TRANSITIONS],
    _choice(TRANSITIONS),
    _modelled("transition"),
]
RegionName = Annotated[str, Strict()]
CriterionName = Annotated[Literal[CRITERIA], _choice(CRITERIA)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _null_section_is_default(cls, data: Any) -> Any:
        """`dht:` with nothing under it (null) means the section's defaults."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            if (
                name in out
                and out[name] is None
                and not field.is_required()
                and _is_section(field.annotation)
            ):
                del out[name]
        return out


def _is_section(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is dict:
        return True
    if origin in (typing.Union, types.UnionType):
        return False  # Optional sections: null means "absent" (None), keep it
    return isinstance(tp, type) and issubclass(tp, BaseModel)
