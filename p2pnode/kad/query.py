"""The iterative lookup, as a state machine with S/Kademlia disjoint paths.

A ``Lookup`` never sends anything: ``next_peers()`` says whom to contact now, and the caller reports
back with ``on_success(peer, closer_peers)`` or ``on_failure(peer)``. With ``paths`` = d > 1 the lookup
runs d independent paths, each seeded with its share of our closest peers, and a peer is used by at most
one path (S/Kademlia, Baumgart & Mies 2007): an adversary has to sit on every path to hide the target.
A path is finished when the k closest peers it knows (failures excluded) have all been asked and the
``beta`` closest of them have answered (``beta`` = k: all of them; go-libp2p-kad-dht's "resiliency" is the
same number, there 3). The result is the k closest peers that answered or are still being waited for, over
all paths: the answers that come after the end can no longer change whom the lookup asks, and a peer still
to answer was referred as close by a peer that did; the caller keeps their answers for its routing table.
A peer the caller reports as slow (``mark_slow``) is, as the Kademlia paper puts it, "removed from
consideration until and unless it does respond": it no longer takes a parallelism slot nor holds up the
end of the lookup, but a late answer is still used.

With ``followup`` the lookup runs as go-libp2p-kad-dht's does (``runLookupWithFollowup``): a path's
search ends as soon as its ``beta`` closest peers have answered; its k closest known peers are then frozen,
those not yet asked are all asked at once (past ``alpha``), and the path ends when every one of them has
answered or failed; answers in the follow-up add no peers.

Two things a node may hand a lookup: ``skip``, peers it saw fail a moment ago (a referral to one of them
is dropped rather than paid for with a wait), and ``rtt``, its round-trip estimates, for proximity
routing: when more candidates of equal rank (the same bit length of distance to the target, the
Kademlia paper's "same bucket" as seen from the target) compete for the last free slots, the ones with
the lowest estimated RTT are asked first. Which peers the lookup ends with does not change, only the order
it asks them in.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Container

from p2pnode.kad.messages import PeerInfo
from p2pnode.kad.rtt import RttEstimates

NOT_CONTACTED, WAITING, SUCCEEDED, FAILED, SLOW = 0, 1, 2, 3, 4


class _Path:
    __slots__ = ("order", "state", "parallelism", "in_flight", "frozen")

    def __init__(self, parallelism: int) -> None:
        self.order: list[tuple[int, int]] = []  # (distance, kad_id), closest first
        self.state: dict[int, int] = {}
        self.parallelism = parallelism
        self.in_flight = 0
        self.frozen: list[int] | None = None  # with followup: the k closest when the search ended


class Lookup:
    def __init__(self, target: int, seeds: list[PeerInfo], k: int, alpha: int, paths: int = 1,
                 local_id: int | None = None, skip: Container[int] = (), rtt: RttEstimates | None = None,
                 beta: int | None = None, followup: bool = False):
        self.target = target
        self.k = k
        self.followup = followup
        self.beta = k if beta is None else min(beta, k)
        self.skip = skip
        self.rtt = rtt
        count = max(1, min(paths, len(seeds))) if seeds else 1
        # alpha requests in flight in total, spread over the paths (each keeps at least one).
        self.paths = [_Path(max(1, alpha // count + (1 if i < alpha % count else 0))) for i in range(count)]
        self.owner: dict[int, _Path | None] = {}   # which path a peer belongs to: the disjointness rule
        if local_id is not None:
            self.owner[local_id] = None  # never contact ourselves, whoever refers us
        self.peers: dict[int, PeerInfo] = {}
        self.hops: dict[int, int] = {}
        self.requests = 0
        self.in_flight = 0
        self.finished = False  # settled by next_peers()
        for i, peer in enumerate(seeds):
            self._add(self.paths[i % count], peer, 1)

    def _add(self, path: _Path, peer: PeerInfo, hops: int) -> None:
        kad_id = peer.peer_id.kad_id
        if kad_id in self.owner:
            return
        self.owner[kad_id] = path
        self.peers[kad_id] = peer
        self.hops[kad_id] = hops
        path.state[kad_id] = NOT_CONTACTED
        insort(path.order, (kad_id ^ self.target, kad_id))

    def next_peers(self) -> list[PeerInfo]:
        """Peers to send a request to now (each is then WAITING until reported on). Also settles
        ``finished``: every path's k closest non-failed peers have been asked, its beta closest answered."""
        out: list[PeerInfo] = []
        k = self.k
        finished = True
        rtt = self.rtt
        beta = self.beta
        for path in self.paths:
            if self.followup and self._follow_up(path, out):
                finished = finished and path.in_flight == 0
                continue
            free = slots = path.parallelism - path.in_flight
            state = path.state
            seen = 0
            picked: list[tuple[int, int]] = []
            tie = 0  # with proximity: the rank of the last pick; candidates of that rank compete for its slot
            for entry in path.order:
                if tie and entry[0].bit_length() != tie:
                    break
                s = state[entry[1]]
                if s >= FAILED:  # failed or slow
                    continue
                if s == NOT_CONTACTED:
                    finished = False
                    if free > 0:
                        picked.append(entry)
                        free -= 1
                        if free == 0 and rtt is not None:
                            tie = entry[0].bit_length()
                    elif tie:
                        picked.append(entry)
                elif s == WAITING and seen < beta:
                    finished = False
                seen += 1
                if seen >= k or (free <= 0 and not finished and not tie):
                    break
            if len(picked) > slots:  # more candidates of the cut-off rank than slots: the nearest in RTT
                fixed = 0
                while picked[fixed][0].bit_length() < tie:
                    fixed += 1
                group = picked[fixed:]
                group.sort(key=lambda entry: rtt.srtt_of(entry[1]))  # type: ignore[union-attr]
                picked[fixed:] = group[: slots - fixed]
            for _, kad_id in picked:
                state[kad_id] = WAITING
                out.append(self.peers[kad_id])
            path.in_flight += len(picked)
        self.requests += len(out)
        self.in_flight += len(out)
        self.finished = finished
        return out

    def _follow_up(self, path: _Path, out: list[PeerInfo]) -> bool:
        """With ``followup``: whether the path's search is over (its beta closest non-failed peers answered);
        then its k closest are frozen and those not yet asked are added to ``out``."""
        state = path.state
        if path.frozen is None:
            closest = [kad_id for _, kad_id in path.order if state[kad_id] < FAILED][: self.k]
            if not closest or any(state[kad_id] != SUCCEEDED for kad_id in closest[: self.beta]):
                return False
            path.frozen = closest
        for kad_id in path.frozen:
            if state[kad_id] == NOT_CONTACTED:
                state[kad_id] = WAITING
                path.in_flight += 1
                out.append(self.peers[kad_id])  # counted in requests and in_flight by next_peers
        return True

    def _settle(self, kad_id: int, state: int) -> _Path | None:
        """Move a WAITING or SLOW peer to ``state``; None if the report is not for an open request."""
        path = self.owner.get(kad_id)
        if path is None:
            return None
        current = path.state[kad_id]
        if current == WAITING:
            path.in_flight -= 1
            self.in_flight -= 1
        elif current != SLOW:
            return None  # a late or repeated report
        path.state[kad_id] = state
        return path

    def on_success(self, peer: PeerInfo, closer_peers: tuple[PeerInfo, ...] | list[PeerInfo]) -> None:
        kad_id = peer.peer_id.kad_id
        path = self._settle(kad_id, SUCCEEDED)
        if path is None:
            return
        if path.frozen is not None:
            return
        hops = self.hops[kad_id] + 1
        owner = self.owner
        skip = self.skip
        for closer in closer_peers:  # _add, inlined: this loop runs for every peer of every answer
            closer_id = closer.peer_id.kad_id
            if closer_id not in owner and closer_id not in skip:
                owner[closer_id] = path
                self.peers[closer_id] = closer
                self.hops[closer_id] = hops
                path.state[closer_id] = NOT_CONTACTED
                insort(path.order, (closer_id ^ self.target, closer_id))

    def on_failure(self, peer: PeerInfo) -> None:
        self._settle(peer.peer_id.kad_id, FAILED)

    def state_of(self, peer: PeerInfo) -> int | None:
        kad_id = peer.peer_id.kad_id
        path = self.owner.get(kad_id)
        return path.state[kad_id] if path is not None else None

    def mark_slow(self, peer: PeerInfo) -> bool:
        """The request to ``peer`` is taking too long: stop waiting for it (see the module docstring).
        Returns whether anything changed."""
        kad_id = peer.peer_id.kad_id
        path = self.owner.get(kad_id)
        if path is None or path.state[kad_id] != WAITING:
            return False
        path.state[kad_id] = SLOW
        path.in_flight -= 1
        self.in_flight -= 1
        return True

    def result(self) -> list[PeerInfo]:
        """The k closest peers that answered or are still being waited for, closest first."""
        answered: list[tuple[int, int]] = []
        for path in self.paths:
            state = path.state
            answered.extend(d_id for d_id in path.order if state[d_id[1]] in (SUCCEEDED, WAITING))
        answered.sort()
        return [self.peers[kad_id] for _, kad_id in answered[: self.k]]

    def result_hops(self, result: list[PeerInfo] | None = None) -> int:
        """Hops to the closest peer of the result: how many rounds of referrals led to it. Pass the
        ``result()`` already at hand to save computing it again."""
        best = self.result() if result is None else result
        return self.hops[best[0].peer_id.kad_id] if best else 0
