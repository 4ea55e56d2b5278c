"""A small DNS64 (RFC 6147) and the host side of RFC 7050, on DNS messages as bytes (dnspython
encodes and decodes them).

The server answers ``ipv4only.arpa`` (A: 192.0.0.170 and .171; AAAA: those under its Pref64) and,
for the emulated networks, names it is given with an IPv4 address (A, and AAAA synthesized); every
other name is NXDOMAIN. ``pref64_query`` / ``pref64_from_response`` are what a 464XLAT host sends and
reads to learn the Pref64 (``options.pref64_from_ipv4only`` finds the prefix in the answers).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, IPv6Network

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from p2pnode.transition import addresses, options

TTL = 60


class Dns64:
    def __init__(self, pref64: IPv6Network, names: dict[str, IPv4Address] | None = None):
        self.pref64 = pref64
        self.names = {options.IPV4ONLY_ARPA: list(options.IPV4ONLY_ADDRESSES)}
        for name, addr in (names or {}).items():
            self.names[name.rstrip(".").lower()] = [IPv4Address(addr)]

    def answer(self, wire: bytes) -> bytes | None:
        """The response to a query, or ``None`` for something that is not a query we can read."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if query.flags & dns.flags.QR or len(query.question) != 1:
            return None
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        found = self.names.get(name)
        if found is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "A", [str(a) for a in found]))
        elif question.rdtype == dns.rdatatype.AAAA:
            synthesized = []
            for addr in found:
                try:
                    synthesized.append(str(addresses.synthesize(self.pref64, addr)))
                except ValueError:  # RFC 6052 §3.1: no non-global address under 64:ff9b::/96
                    pass
            if synthesized:
                response.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "AAAA", synthesized))
        return response.to_wire()


def pref64_query(query_id: int) -> bytes:
    query = dns.message.make_query(options.IPV4ONLY_ARPA, "AAAA", id=query_id)
    return query.to_wire()


def pref64_from_response(wire: bytes, query_id: int) -> list[IPv6Network]:
    """The Pref64s in a response to ``pref64_query`` (empty if it is not that response, or has none)."""
    try:
        response = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return []
    if response.id != query_id:
        return []
    found = [IPv6Address(rdata.address) for rrset in response.answer if rrset.rdtype == dns.rdatatype.AAAA
             for rdata in rrset]
    return options.pref64_from_ipv4only(found)
