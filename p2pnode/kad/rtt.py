"""Round-trip time estimates per peer, computed as TCP's retransmission timer is (RFC 6298, section 2).

Each answered request gives a sample R of the peer's round-trip time. The first sets SRTT = R and
RTTVAR = R/2; later ones RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R| and SRTT = 7/8 SRTT + 1/8 R. A request
unanswered after RTO = SRTT + 4 RTTVAR is very likely lost or its peer gone. A lookup stops waiting for
it then (instead of after a fixed second) and, if the peer keeps silent for longer, counts it as failed.

The RFC's lower bound of one second suits TCP's retransmissions (a spurious one costs a whole window);
here a request past its RTO is only no longer waited for, and a late answer is still used, so the bound
is the node's ``min_wait`` (about the RTT of a nearby host). Peers never measured get the estimate over
all samples (the same formulas fed every sample), so a lookup's referrals are judged by what the node
has seen of the network. Only the ``capacity`` most recently measured peers are kept: memory stays
bounded when a node talks to thousands of peers.
"""

from __future__ import annotations


class RttEstimates:
    __slots__ = ("peers", "capacity", "srtt", "rttvar")

    def __init__(self, capacity: int = 256) -> None:
        self.peers: dict[int, tuple[float, float]] = {}  # kad_id -> (SRTT, RTTVAR), least recent first
        self.capacity = capacity
        self.srtt = -1.0    # over every sample, of any peer; negative: none yet
        self.rttvar = 0.0

    def sample(self, kad_id: int, rtt: float) -> None:
        """A request to ``kad_id`` was answered ``rtt`` seconds after it was sent."""
        peers = self.peers
        estimate = peers.pop(kad_id, None)
        if estimate is None:
            peers[kad_id] = (rtt, rtt / 2)
            if len(peers) > self.capacity:
                del peers[next(iter(peers))]
        else:
            srtt, rttvar = estimate
            peers[kad_id] = (srtt + (rtt - srtt) / 8, rttvar + (abs(srtt - rtt) - rttvar) / 4)
        srtt = self.srtt
        if srtt >= 0:
            self.rttvar += (abs(srtt - rtt) - self.rttvar) / 4
            self.srtt = srtt + (rtt - srtt) / 8
        else:
            self.srtt, self.rttvar = rtt, rtt / 2

    def rto(self, kad_id: int, floor: float, ceiling: float) -> float:
        """SRTT + 4 RTTVAR of the peer (or over all peers if it was never measured), within [floor, ceiling];
        ``ceiling`` before any sample."""
        srtt, rttvar = self.peers.get(kad_id) or (self.srtt, self.rttvar)
        if srtt < 0:
            return ceiling
        rto = srtt + 4 * rttvar
        return floor if rto < floor else ceiling if rto > ceiling else rto

    def known(self, kad_id: int) -> bool:
        return kad_id in self.peers

    def srtt_of(self, kad_id: int) -> float:
        """The peer's smoothed RTT, or the one over all peers if it was never measured."""
        estimate = self.peers.get(kad_id)
        return estimate[0] if estimate is not None else self.srtt
