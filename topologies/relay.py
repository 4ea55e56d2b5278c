"""User-space link emulator for kernels without netem.

Run inside a "relay" network namespace that has two interfaces, each the far end of one half of an emulated
link (``A ── IF_A [relay] IF_B ── B``)::

    python -m topologies.relay IF_A IF_B --delay-ms 20 [--jitter-ms J] [--loss P] [--rate-mbit R] [--seed S]

Every Ethernet frame that arrives on one interface is sent out of the other after the one-way delay (applied
per direction, so the RTT across the link is twice the delay). Frames are read and written with AF_PACKET
sockets; the interfaces need no addresses (IPv6 should be disabled on them so the relay's own kernel stays
quiet) and are put into promiscuous mode by the relay.

* delay: a heap of (due time, sequence number) drives one ``select`` loop — no thread per frame. Frames with
  equal delays leave in arrival order; with jitter (uniform in ±J, like netem without a distribution table) a
  frame never overtakes an earlier one in the same direction, i.e. jitter does not reorder.
* loss: each frame is dropped independently with probability P percent (per direction).
* rate: a token bucket per direction (rate R Mbit/s, burst ``--burst-bytes``) in front of the delay, like a
  link's serialisation followed by its propagation delay; at most ``--queue`` frames wait for tokens, further
  frames are dropped (tail drop).
* checksum/GSO offloads: the sockets use PACKET_VNET_HDR (Linux >= 2.6.38), so partially checksummed and GSO
  frames from veth peers are forwarded with their offload metadata and the receiver sees correct packets (no
  ethtool needed). Without it (``--no-vnet-hdr``) TCP breaks unless checksum/GSO offloads are disabled on the
  peers: large GSO frames cannot be sent and partial checksums arrive unfinished.

Prints ``ready`` on stdout once both sockets are bound; SIGTERM/SIGINT stop it cleanly, SIGUSR1 prints the
counters; on exit one JSON line of counters goes to stderr. Standard library only.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
VNET_HDR_LEN = 10  # struct virtio_net_hdr
RECV_SIZE = 65536 + VNET_HDR_LEN + 64
BATCH = 64  # frames read from one socket before looking at the timer again
EARLY = 50e-6  # frames due this soon are sent now rather than after another wake-up


def open_socket(ifname: str, vnet_hdr: bool = True) -> tuple[socket.socket, bool, bool]:
    """An AF_PACKET socket bound to ``ifname``; returns (socket, uses vnet header, kernel ignores outgoing)."""
    # Protocol 0 first, so that nothing is queued from other interfaces before bind().
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        use_vnet = False
        if vnet_hdr:
            try:
                sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            except OSError as exc:
                raise OSError(f"PACKET_VNET_HDR not available ({exc.strerror}); run with --no-vnet-hdr after "
                              "disabling checksum/GSO offloads on the peers") from exc
            use_vnet = True
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            ignores_outgoing = True
        except OSError:
            ignores_outgoing = False
        sock.bind((ifname, ETH_P_ALL))
        ifindex = socket.if_nametoindex(ifname)
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""))
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            except OSError:
                pass
        sock.setblocking(False)
        return sock, use_vnet, ignores_outgoing
    except BaseException:
        sock.close()
        raise


class Direction:
    """One direction of the link: its output socket, loss, token bucket and counters."""

    def __init__(self, name: str, out: socket.socket, header: int, rate_bps: float, burst: int, queue: int):
        self.name = name
        self.out = out
        self.header = header  # bytes of vnet header in front of each frame (not counted against the rate)
        self.rate_bps = rate_bps
        self.tau = burst * 8 / rate_bps if rate_bps else 0.0
        self.tat = 0.0  # theoretical arrival time of the token bucket (GCRA form)
        self.queue = queue
        self.waiting: deque[float] = deque()  # departure times of frames still waiting for tokens
        self.last_due = 0.0
        self.received = self.forwarded = self.bytes = 0
        self.lost = self.queue_drops = self.send_errors = self.receive_errors = 0
        self.late_sum = self.late_max = 0.0  # how much later than due frames were handed to the kernel

    def stats(self) -> dict:
        late_mean = self.late_sum / self.forwarded if self.forwarded else 0.0
        return {"received": self.received, "forwarded": self.forwarded, "bytes": self.bytes, "lost": self.lost,
                "queue_drops": self.queue_drops, "send_errors": self.send_errors,
                "receive_errors": self.receive_errors, "late_us_mean": round(late_mean * 1e6, 1),
                "late_us_max": round(self.late_max * 1e6, 1)}


class Relay:
    """The forwarding loop. ``sockets`` (two connected datagram sockets standing in for the interfaces) is for
    tests; normally the AF_PACKET sockets are opened on ``if_a`` and ``if_b``."""

    def __init__(self, if_a: str, if_b: str, delay_ms: float, jitter_ms: float = 0.0, loss: float = 0.0,
                 rate_mbit: float = 0.0, burst_bytes: int = 0, queue: int = 1000, seed: int | None = None,
                 vnet_hdr: bool = True, sockets: tuple[socket.socket, socket.socket] | None = None):
        if delay_ms < 0 or jitter_ms < 0 or rate_mbit < 0 or queue < 1:
            raise ValueError("delay, jitter and rate must be >= 0, queue >= 1")
        if not 0 <= loss <= 100:
            raise ValueError("loss is a percentage, 0..100")
        self.delay = delay_ms / 1000.0
        self.jitter = jitter_ms / 1000.0
        self.loss = loss / 100.0
        self.rng = random.Random(seed)
        self.sockets: list[socket.socket] = []
        if sockets is None:
            sock_a, vnet_a, ign_a = open_socket(if_a, vnet_hdr)
            self.sockets.append(sock_a)
            try:
                sock_b, _vnet_b, ign_b = open_socket(if_b, vnet_hdr)
            except BaseException:
                sock_a.close()
                raise
            self.sockets.append(sock_b)
        else:
            sock_a, sock_b = sockets
            for sock in sockets:
                sock.setblocking(False)
            self.sockets += [sock_a, sock_b]
            vnet_a, ign_a, ign_b = False, True, True
        self.vnet = vnet_a
        self.kernel_drops = 0  # frames the kernel dropped because a socket's receive buffer was full
        self.ignores_outgoing = ign_a and ign_b
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        header = VNET_HDR_LEN if self.vnet else 0
        rate_bps = rate_mbit * 1e6
        burst = burst_bytes or max(15000, int(rate_bps / 8 * 0.002))  # >= 10 full frames or 2 ms at rate
        # Frames read from A leave through B and vice versa.
        self.directions = {
            sock_a.fileno(): Direction(f"{if_a}->{if_b}", sock_b, header, rate_bps, burst, queue),
            sock_b.fileno(): Direction(f"{if_b}->{if_a}", sock_a, header, rate_bps, burst, queue),
        }
        self.heap: list[tuple[float, int, Direction, bytes]] = []
        self.seq = 0
        self.stopping = False
        self.dump = False
        self.started = time.monotonic()

    # -- frames in ----------------------------------------------------------------------------------------------

    def _admit(self, d: Direction, frame: bytes, now: float) -> None:
        d.received += 1
        if self.loss and self.rng.random() < self.loss:
            d.lost += 1
            return
        depart = now
        if d.rate_bps:
            waiting = d.waiting
            while waiting and waiting[0] <= now:
                waiting.popleft()
            if len(waiting) >= d.queue:
                d.queue_drops += 1
                return
            tat = d.tat if d.tat > now else now
            depart = tat - d.tau if tat - d.tau > now else now
            d.tat = tat + (len(frame) - d.header) * 8 / d.rate_bps
            if depart > now:
                waiting.append(depart)
        due = depart + self.delay
        if self.jitter:
            due += self.rng.uniform(-self.jitter, self.jitter)
        if due < d.last_due:  # never overtake an earlier frame of the same direction
            due = d.last_due
        d.last_due = due
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, d, frame))

    def _drain(self, sock: socket.socket) -> None:
        d = self.directions[sock.fileno()]
        now = time.monotonic()
        check_outgoing = not self.ignores_outgoing
        for _ in range(BATCH):
            try:
                if check_outgoing:
                    frame, addr = sock.recvfrom(RECV_SIZE)
                    if addr[2] == PACKET_OUTGOING:
                        continue
                else:
                    frame = sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ENETDOWN while an interface goes away; select() tells us when to retry
                d.receive_errors += 1
                return
            self._admit(d, frame, now)

    # -- frames out ---------------------------------------------------------------------------------------------

    def _flush(self, horizon: float) -> None:
        heap = self.heap
        now = time.monotonic()
        while heap and heap[0][0] <= horizon:
            due, _seq, d, frame = heapq.heappop(heap)
            try:
                d.out.send(frame)
                d.forwarded += 1
                d.bytes += len(frame) - d.header
                late = now - due
                if late > 0:
                    d.late_sum += late
                    if late > d.late_max:
                        d.late_max = late
            except OSError:  # ENOBUFS / EAGAIN (full device queue), ENETDOWN…: the frame is lost
                d.send_errors += 1

    # -- loop ---------------------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Make ``run()`` return soon; safe from signal handlers and other threads."""
        self.stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def run(self) -> None:
        rfd = self._wake_r
        handlers = {}
        old_wakeup = None
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:  # signals only reach the main thread; the wakeup fd interrupts select() at once
            old_wakeup = signal.set_wakeup_fd(self._wake_w)

            def stop(_signum, _frame):
                self.stopping = True

            def dump(_signum, _frame):
                self.dump = True

            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                handlers[signum] = signal.signal(signum, stop)
            handlers[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, dump)
            _set_timer_slack()
        readers = [*self.sockets, rfd]
        heap = self.heap
        try:
            while not self.stopping:
                timeout = max(0.0, heap[0][0] - EARLY - time.monotonic()) if heap else 1.0
                ready, _, _ = select.select(readers, [], [], timeout)
                for sock in ready:
                    if sock is rfd:
                        try:
                            while os.read(rfd, 512):
                                pass
                        except BlockingIOError:
                            pass
                    else:
                        self._drain(sock)
                if heap:
                    self._flush(time.monotonic() + EARLY)
                if self.dump:
                    self.dump = False
                    print(json.dumps(self.stats()), file=sys.stderr, flush=True)
        finally:
            if in_main:
                signal.set_wakeup_fd(old_wakeup)
                for signum, handler in handlers.items():
                    signal.signal(signum, handler)

    def stats(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        for sock in self.sockets:
            try:  # reading the counters resets them, hence the running sum
                _packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
                self.kernel_drops += drops
            except OSError:
                pass
        return {
            "directions": {d.name: d.stats() for d in self.directions.values()},
            "kernel_drops": self.kernel_drops,
            "pending": len(self.heap),
            "vnet_hdr": self.vnet,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "wall_s": round(time.monotonic() - self.started, 3),
        }

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _set_timer_slack() -> None:
    """1 µs timer slack instead of the default 50 µs: wake-ups closer to the frames' due times."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, in ns
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m topologies.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("if_a", metavar="IF_A")
    parser.add_argument("if_b", metavar="IF_B")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay per direction (ms)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="uniform jitter ± (ms); never reorders")
    parser.add_argument("--loss", type=float, default=0.0, help="loss probability per frame, percent")
    parser.add_argument("--rate-mbit", type=float, default=0.0, help="token-bucket rate per direction (Mbit/s)")
    parser.add_argument("--burst-bytes", type=int, default=0, help="token-bucket depth (default max(15000, 2 ms))")
    parser.add_argument("--queue", type=int, default=1000, help="frames waiting for tokens before tail drop")
    parser.add_argument("--seed", type=int, default=None, help="seed for loss and jitter")
    parser.add_argument("--no-vnet-hdr", action="store_true", help="do not use PACKET_VNET_HDR")
    args = parser.parse_args(argv)
    try:
        relay = Relay(args.if_a, args.if_b, args.delay_ms, args.jitter_ms, args.loss, args.rate_mbit,
                      args.burst_bytes, args.queue, args.seed, vnet_hdr=not args.no_vnet_hdr)
    except (OSError, ValueError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    try:
        print("ready", flush=True)
        relay.run()
    finally:
        relay.close()
        print(json.dumps(relay.stats()), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
