"""Endpoints from a JSON spec: ``{"mechanism": "dslite", "role": "b4", "aftr": "2001:db8::1"}``.

Keys per mechanism and role (addresses as text, prefixes as ``addr/len``):

- 6to4 host: own4, relay (default 192.88.99.1); relay: own4
- 6rd ce / br: own4, prefix, ipv4_mask_len, br
- isatap host: own4, prefix, router; router: own4, prefix
- 6over4 host: own4, prefix (default fe80::/64), router (a 6over4 router's IPv4 for what is off the prefix)
- teredo client: server, relay ("ip:port"), port, seed; server: own4, port; relay: own6, port
- dslite b4: aftr, own6; aftr: pool (list), own6, seed
- map-e ce: rule, end_user, br, seed, forward; br: rule, own6, own4
- map-t ce: rule, end_user, dmr, seed, forward; br: rule, dmr, own4, own6
- 464xlat clat: clat6, pref64; plat: pref64, pool (list), own6, seed

The translators (MAP-T, 464XLAT) also take ``mtu6``, the IPv6 path MTU they translate for (default 1280, the
IPv6 minimum, as RFC 7915 §5.1 allows when the path is not known; 1500 on a 1500-byte access link).

A CE's ``forward`` lists ``"ip:port"`` port forwards into its port set (a listener behind it).
A rule is ``{"ipv6_prefix": ..., "ipv4_prefix": ..., "ea_len": ..., "psid_offset": 6}``.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from p2pnode.transition import addresses, encap, mapping, teredo, xlat
from p2pnode.transition.endpoint import Endpoint


class SpecError(ValueError):
    """A spec that names no endpoint or lacks a key; the message names it."""


def _rule(data: dict) -> mapping.MapRule:
    return mapping.MapRule(IPv6Network(data["ipv6_prefix"]), IPv4Network(data["ipv4_prefix"]), int(data["ea_len"]),
                           psid_offset=int(data.get("psid_offset", mapping.DEFAULT_PSID_OFFSET)),
                           forwarding=bool(data.get("forwarding", False)))


def _hostport(text: str) -> tuple[IPv4Address, int]:
    host, _, port = text.rpartition(":")
    return IPv4Address(host), int(port)


def build(spec: dict) -> Endpoint:
    try:
        return _build(spec)
    except KeyError as exc:
        raise SpecError(f"{spec.get('mechanism')} {spec.get('role')}: missing key {exc.args[0]!r}") from None
    except ValueError as exc:
        raise SpecError(f"{spec.get('mechanism')} {spec.get('role')}: {exc}") from None


def _build(s: dict) -> Endpoint:
    mech, role = s["mechanism"], s.get("role", "host")
    rng = random.Random(int(s.get("seed", 1)))
    mtu6 = {"mtu6": int(s["mtu6"])} if "mtu6" in s else {}
    if mech == "6to4":
        return encap.sixtofour(IPv4Address(s["own4"]), role=role,
                               relay=IPv4Address(s.get("relay", str(addresses.SIXTOFOUR_RELAY_ANYCAST))))
    if mech == "6rd":
        domain = addresses.SixRdDomain(IPv6Network(s["prefix"]), int(s["ipv4_mask_len"]), (IPv4Address(s["br"]),))
        return encap.sixrd(domain, IPv4Address(s["own4"]), role=role)
    if mech == "isatap":
        router = IPv4Address(s["router"]) if role == "host" else None
        return encap.isatap(IPv4Address(s["own4"]), IPv6Network(s["prefix"]), role=role, router=router)
    if mech == "6over4":
        return encap.sixover4(IPv4Address(s["own4"]), IPv6Network(s.get("prefix", "fe80::/64")),
                              router=IPv4Address(s["router"]) if "router" in s else None)
    if mech == "teredo":
        if role == "client":
            return teredo.TeredoClient(IPv4Address(s["server"]), _hostport(s["relay"]), rng,
                                       local_port=int(s.get("port", 0)))
        if role == "server":
            return teredo.TeredoServer(IPv4Address(s["own4"]), port=int(s.get("port", addresses.TEREDO_PORT)))
        if role == "relay":
            return teredo.TeredoRelay(port=int(s.get("port", addresses.TEREDO_PORT)), own6=IPv6Address(s["own6"]))
    if mech == "dslite":
        if role == "b4":
            return encap.DsLiteB4(IPv6Address(s["aftr"]), bind=IPv6Address(s["own6"]) if "own6" in s else None)
        if role == "aftr":
            return encap.DsLiteAftr([IPv4Address(a) for a in s["pool"]], rng,
                                    bind=IPv6Address(s["own6"]) if "own6" in s else None)
    if mech in ("map-e", "map-t"):
        rule = _rule(s["rule"])
        if role == "ce":
            ce = mapping.derive_ce(rule, s["end_user"])
            forwards = tuple(_hostport(f) for f in s.get("forward", ()))
            if mech == "map-e":
                return encap.MapECe(ce, IPv6Address(s["br"]), rng, forwards=forwards)
            return xlat.MapTCe(ce, IPv6Network(s["dmr"]), rng, **mtu6, forwards=forwards)
        if role == "br":
            if mech == "map-e":
                return encap.MapEBr((rule,), IPv6Address(s["own6"]), IPv4Address(s["own4"]))
            return xlat.MapTBr((rule,), IPv6Network(s["dmr"]), IPv4Address(s["own4"]), IPv6Address(s["own6"]),
                               **mtu6)
    if mech == "464xlat":
        if role == "clat":
            return xlat.Clat(IPv6Address(s["clat6"]), IPv6Network(s["pref64"]), **mtu6)
        if role == "plat":
            return xlat.Plat(IPv6Network(s["pref64"]), [IPv4Address(a) for a in s["pool"]], IPv6Address(s["own6"]),
                             rng, **mtu6)
    raise SpecError(f"no endpoint for mechanism {mech!r} role {role!r}")
