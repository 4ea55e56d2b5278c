"""One emulated run: real ``p2pnode`` processes in the hosts of an emulated network, driven by a scenario.

The driver plays the simulator's part with real processes: it starts the bootstrap nodes, then the others
spread over ``nodes.join_over``; it runs the scenario's workload (Poisson lookups, puts and gets per live
node, as the simulator does), its churn (SIGKILL for a crash, SIGTERM for a graceful leave, a restart after
the offline time) and its formation check, and writes the simulator's events. Each node answers over its
``--control stdio`` pipe with its own measurements (latency from its clock, hops, requests), so the pipe's
delay never enters a figure. Event times are seconds since the run started.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from emulator.pubsub import PubSubWorkload
from experiment import churn as churn_model
from experiment.measure import drain_seconds
from experiment.oracle import LiveSet
from p2pnode.eventlog import EventWriter
from p2pnode.identity import Keypair, PeerId, kad_key

QUIC_PORT = 4001
TCP_PORT = 4002
START_TIMEOUT = 60.0
VERIFY_INTERVAL = 5.0


class _Bucket:
    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[int] = []


def buckets_of(local_id: int, peer_ids: list[int]) -> dict[int, _Bucket]:
    """A routing table's buckets rebuilt from its peer IDs (bucket index = bit length of the XOR distance)."""
    buckets: dict[int, _Bucket] = {}
    for kad_id in peer_ids:
        buckets.setdefault((kad_id ^ local_id).bit_length(), _Bucket()).entries.append(kad_id)
    return buckets


class HostLoad:
    """How busy the host's CPUs were while the scenario ran. Real nodes share the machine: when it is
    saturated, their latencies and timeouts include waiting for a CPU, which the report must say."""

    SATURATED = 95.0  # percent of all CPUs

    def __init__(self) -> None:
        psutil.cpu_percent(None)  # starts the measurement interval
        self.samples: list[tuple[float, float, float]] = []  # (scenario time, seconds covered, busy %)
        self._last = 0.0

    def sample(self, now: float) -> None:
        self.samples.append((now, now - self._last, psutil.cpu_percent(None)))
        self._last = now

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        covered = sum(s[1] for s in self.samples) or 1.0
        saturated = [s for s in self.samples if s[2] >= self.SATURATED]
        return {
            "host_cpus": psutil.cpu_count() or 1,
            "host_cpu_busy_percent": round(sum(s[1] * s[2] for s in self.samples) / covered, 1),
            "host_cpu_saturated_at_percent": self.SATURATED,
            "host_cpu_saturated_seconds": round(sum(s[1] for s in saturated), 1),
            "host_cpu_saturated_last_at": round(saturated[-1][0], 1) if saturated else None,
        }


class NodeProcess:
    """One ``p2pnode run --control stdio`` process in an emulated host."""

    def __init__(self, index: int, popen: subprocess.Popen):
        self.index = index
        self.popen = popen
        self.ready: dict | None = None
        self._ids = 0
        self._waiting: dict[int, asyncio.Future] = {}
        self._reader: asyncio.StreamReader | None = None
        self._task: asyncio.Task | None = None
        self.on_event: Callable[[dict], None] = lambda event: None

    async def attach(self) -> None:
        loop = asyncio.get_running_loop()
        self._reader = asyncio.StreamReader(limit=1 << 22)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(self._reader), self.popen.stdout)
        async with asyncio.timeout(START_TIMEOUT):
            while self.ready is None:
                line = await self._reader.readline()
                if not line:
                    raise RuntimeError(f"node {self.index} exited before it was ready (see its log)")
                message = json.loads(line)
                if message.get("event") == "ready":
                    self.ready = message
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            line = await self._reader.readline()
            if not line:
                break
            try:
                message = json.loads(line)
            except ValueError:
                continue
            future = self._waiting.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)
            elif "event" in message:
                self.on_event(message)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError(f"node {self.index} went away"))
        self._waiting.clear()

    async def call(self, cmd: str, timeout: float = 60.0, **args: Any) -> dict:
        self._ids += 1
        rid = self._ids
        future = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            self.popen.stdin.write((json.dumps({"id": rid, "cmd": cmd, **args}) + "\n").encode())
            self.popen.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            self._waiting.pop(rid, None)
            raise ConnectionError(f"node {self.index} is not running") from exc
        async with asyncio.timeout(timeout):
            return await future

    def stop(self, graceful: bool) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)

    async def wait(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.popen.poll() is None:
            self.popen.kill()
        if self._task is not None:
            self._task.cancel()


class Emulation:
    def __init__(self, scenario: Any, net: Any, events: EventWriter, run_dir: Path,
                 progress: Callable[[float, float], None] | None = None, transport: str = "quic",
                 log_level: str = "warning"):
        self.scenario = scenario
        self.net = net
        self.events = events
        self.run_dir = run_dir
        self.progress = progress
        self.transport = transport  # the one nodes bootstrap over and prefer; both are listened on
        self.log_level = log_level  # of each node's log, nodes/<i>/node.log
        self.n = scenario.nodes.count
        master = random.Random(scenario.seed)
        self.rng_churn = random.Random(master.getrandbits(64))
        self.rng_work = random.Random(master.getrandbits(64))
        rng_pubsub = random.Random(master.getrandbits(64))
        self.keypairs = [Keypair.from_seed(hashlib.sha256(f"{scenario.seed}:{i}".encode()).digest())
                         for i in range(self.n)]
        self.peer_ids = [k.peer_id for k in self.keypairs]
        self.kad_ids = [p.kad_id for p in self.peer_ids]
        self._kad_ids_by_text = {str(p): p.kad_id for p in self.peer_ids}
        self.hosts = list(net.hosts)[: self.n]
        self.nodes: list[NodeProcess | None] = [None] * self.n  # joined (live) nodes
        self.started_once = [False] * self.n
        self._spawned: list[NodeProcess] = []
        self.live = LiveSet()
        self.published: list[tuple[bytes, int]] = []
        self.formed = False
        self._last_verify = float("-inf")
        self._verify_took = 0.0
        self.t0 = 0.0
        self.end = scenario.warmup + scenario.duration
        self.stop_at = self.end + drain_seconds(scenario)  # as in simulation
        self._tasks: set[asyncio.Task] = set()
        self.errors: list[str] = []
        self.pubsub = PubSubWorkload(self, rng_pubsub) if scenario.pubsub is not None else None
        (run_dir / "nodes").mkdir(exist_ok=True)

    def _kad_id(self, text: str) -> int:
        """The Kademlia key of a peer a node reported (ours, looked up: the sampler reads n² of them a second)."""
        kad = self._kad_ids_by_text.get(text)
        return kad if kad is not None else PeerId.from_base58(text).kad_id

    # ---- nodes -----------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _addrs(self, i: int) -> tuple[str, str]:
        """Node i's listen addresses, the preferred transport's first."""
        ip6 = self.net.ip6(self.hosts[i])
        quic, tcp = f"/ip6/{ip6}/udp/{QUIC_PORT}/quic-v1", f"/ip6/{ip6}/tcp/{TCP_PORT}"
        return (quic, tcp) if self.transport == "quic" else (tcp, quic)

    def _config(self, i: int) -> Path:
        directory = self.run_dir / "nodes" / str(i)
        directory.mkdir(parents=True, exist_ok=True)
        key = directory / "node.key"
        if not key.exists():
            key.write_bytes(self.keypairs[i].to_protobuf())
        dht = self.scenario.dht
        bootstrap = [f"{self._addrs(b)[0]}/p2p/{self.peer_ids[b]}"
                     for b in range(self.scenario.nodes.bootstrap) if b != i]
        transports = ["quic", "tcp"] if self.transport == "quic" else ["tcp", "quic"]
        pubsub = self.pubsub.node_config() if self.pubsub is not None else "[pubsub]\nenabled = false\n"
        text = f"""# written by emulate for node {i} in host {self.hosts[i]}
[network]
listen_addresses = {json.dumps(list(self._addrs(i)))}
transports = {json.dumps(transports)}
key_file = "node.key"
[bootstrap]
nodes = {json.dumps(bootstrap)}
[dht]
replication_factor = {dht.k}
alpha = {dht.alpha}
disjoint_paths = {dht.disjoint_paths}
record_ttl = {dht.record_ttl}
request_timeout = {dht.request_timeout}
slow_after = {dht.slow_after}
refresh_interval = {dht.refresh_interval}
republish_interval = {dht.republish_interval}
[mcp]
enabled = false
{pubsub}[log]
level = "{self.log_level}"
events_file = "events.csv"
node_index = {i}
"""
        path = directory / "node.toml"
        path.write_text(text)
        return path

    async def spawn_node(self, i: int) -> NodeProcess:
        """Start node i's process, listening but not yet joined (``--defer-join``): the interpreter's start-up
        (about a second of CPU) then happens before the scenario has the node join, not inside its clock."""
        config = self._config(i)
        with open(self.run_dir / "nodes" / str(i) / "node.log", "ab") as log:
            popen = self.net.popen(self.hosts[i], [sys.executable, "-m", "p2pnode.cli", "run", "--config",
                                                   str(config), "--control", "stdio", "--defer-join"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        node = NodeProcess(i, popen)
        self._spawned.append(node)
        try:
            await node.attach()
        except (RuntimeError, TimeoutError, ValueError) as exc:
            node.stop(graceful=False)
            raise RuntimeError(f"node {i} in host {self.hosts[i]} did not start: {exc}") from None
        return node

    async def join_node(self, i: int, node: NodeProcess) -> None:
        await node.call("join")
        if self.pubsub is not None:
            await self.pubsub.joined(i, node)
        self.nodes[i] = node
        self.live.add(self.kad_ids[i])
        self.events.write(self.now(), "up", i, value=0 if self.started_once[i] else 1)
        self.started_once[i] = True

    async def start_node(self, i: int) -> None:
        await self.join_node(i, await self.spawn_node(i))

    async def stop_node(self, i: int, graceful: bool) -> None:
        node = self.nodes[i]
        if node is None:
            return
        self.nodes[i] = None
        self.live.remove(self.kad_ids[i])
        if self.pubsub is not None:
            self.pubsub.left(i)
        node.stop(graceful)
        self.events.write(self.now(), "down", i, value=1 if graceful else 0)
        await node.wait()

    # ---- scheduling --------------------------------------------------------------------------------

    def later(self, delay: float, coro_fn: Callable[[], Any]) -> None:
        async def run() -> None:
            await asyncio.sleep(max(0.0, delay))
            if self.now() < self.stop_at:
                await coro_fn()

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, ConnectionError | TimeoutError):
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _schedule_churn(self) -> None:
        spec = self.scenario.churn
        if spec is None:
            return
        session = churn_model.sampler(spec.session, self.rng_churn)
        offline = churn_model.sampler(spec.offline, self.rng_churn)
        rng = self.rng_churn

        def leave(i: int) -> Callable[[], Any]:
            async def act() -> None:
                if self.now() >= self.end:  # no churn while the run drains
                    return
                await self.stop_node(i, rng.random() < spec.graceful)
                self.later(offline(), rejoin(i))
            return act

        def rejoin(i: int) -> Callable[[], Any]:
            async def act() -> None:
                if self.now() >= self.end:
                    return
                await self.start_node(i)
                self.later(session(), leave(i))
            return act

        for i in range(self.scenario.nodes.bootstrap, self.n):
            self.later(self.scenario.warmup + session(), leave(i))

    def _poisson(self, rate_per_minute: float, action: Callable[[NodeProcess, int], Any]) -> None:
        if rate_per_minute <= 0:
            return
        total_rate = rate_per_minute / 60.0 * self.n
        rng = self.rng_work

        async def tick() -> None:
            while self.now() < self.end:
                i = rng.randrange(self.n)
                node = self.nodes[i]
                if node is not None:
                    self.later(0, lambda node=node, i=i: action(node, i))
                await asyncio.sleep(rng.expovariate(total_rate))

        self.later(self.scenario.warmup + rng.expovariate(total_rate), tick)

    # ---- workload ----------------------------------------------------------------------------------

    async def _lookup(self, node: NodeProcess, i: int) -> None:
        key = self.rng_work.randbytes(32)
        truth = self.live.closest(kad_key(key), self.scenario.dht.k, exclude=self.kad_ids[i])
        answer = await node.call("find_node", key_hex=key.hex())
        if not answer.get("ok"):
            return
        found = {self._kad_id(p) for p in answer["peers"]}
        ok = bool(truth) and truth[0] in found
        share = len(found.intersection(truth)) / len(truth) if truth else 1.0
        self.events.write(self.now(), "lookup", i, answer["latency"], answer["hops"], ok, round(share, 6),
                          answer["requests"])

    async def _put(self, node: NodeProcess, i: int) -> None:
        key = b"/p2pnode/" + self.rng_work.randbytes(16).hex().encode()
        value = self.rng_work.randbytes(self.scenario.workload.value_size)
        answer = await node.call("put", key_hex=key.hex(), value_hex=value.hex())
        if not answer.get("ok"):
            return
        if answer["replicas"] > 0:
            self.published.append((key, answer["version"]))
        self.events.write(self.now(), "put", i, answer["latency"], None, answer["replicas"] > 0,
                          answer["replicas"], answer["requests"])

    async def _get(self, node: NodeProcess, i: int) -> None:
        if not self.published:
            return
        key, version = self.published[self.rng_work.randrange(len(self.published))]
        answer = await node.call("get", key_hex=key.hex())
        if not answer.get("ok"):
            return
        ok = answer["found"] and answer["version"] >= version
        self.events.write(self.now(), "get", i, answer["latency"], answer["hops"], ok, None, answer["requests"])

    # ---- sampling and formation --------------------------------------------------------------------

    async def _sample(self) -> None:
        now = self.now()
        live = [(i, n) for i, n in enumerate(self.nodes) if n is not None]
        self.events.write(now, "live", value=len(live))
        if not live:
            return
        answers = await asyncio.gather(*(n.call("status", timeout=10) for _, n in live), return_exceptions=True)
        k = self.scenario.dht.k
        checked = complete = bootstrapped = 0
        for (i, _), answer in zip(live, answers, strict=True):
            if not isinstance(answer, dict) or not answer.get("ok"):
                continue
            checked += 1
            bootstrapped += bool(answer["bootstrapped"])
            table = [self._kad_id(p) for p in answer["table"]]
            complete += self.live.table_complete(self.kad_ids[i], buckets_of(self.kad_ids[i], table), k)
        if checked:
            self.events.write(now, "formation", value=round(complete / checked, 6), count=checked)
        if self.pubsub is not None:
            self.pubsub.sample(now, [(i, a) for (i, _), a in zip(live, answers, strict=True)
                                     if isinstance(a, dict) and a.get("ok")])
        joined = now >= self.scenario.nodes.join_over
        # Unlike in simulation, a verification round costs the nodes real CPU (a lookup from every node, and
        # new connections): run it when every table is complete, else at most every VERIFY_INTERVAL s and
        # never more than a third of the time, so it cannot swamp them.
        due = complete == checked or now - self._last_verify >= max(VERIFY_INTERVAL, 3 * self._verify_took)
        if joined and due and checked == len(live) and bootstrapped == checked and not self.formed:
            self._last_verify = now
            await self._verify_formation(live)
            self._verify_took = self.now() - now

    async def _verify_formation(self, live: list[tuple[int, NodeProcess]]) -> None:
        """As the simulator: lookups for one random key from every live node at once must all return the
        true k closest live peers."""
        key = self.rng_work.randbytes(32)
        target, k = kad_key(key), self.scenario.dht.k
        answers = await asyncio.gather(*(n.call("find_node", key_hex=key.hex()) for _, n in live),
                                       return_exceptions=True)
        agreeing = 0
        for (i, _), answer in zip(live, answers, strict=True):
            if isinstance(answer, dict) and answer.get("ok"):
                found = {self._kad_id(p) for p in answer["peers"]}
                agreeing += found == set(self.live.closest(target, k, exclude=self.kad_ids[i]))
        self.formed = agreeing == len(live)
        self.events.write(self.now(), "formation", ok=self.formed, value=round(agreeing / len(live), 6),
                          count=len(live))

    # ---- the run -------------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        scenario = self.scenario
        wall_start = time.perf_counter()
        limit = asyncio.Semaphore(4)  # interpreters starting at once: more only queue for the two cores

        async def spawn(i: int) -> NodeProcess:
            async with limit:
                return await self.spawn_node(i)

        waiting = await asyncio.gather(*(spawn(i) for i in range(self.n)))
        self.t0 = time.monotonic()
        if self.pubsub is not None:
            self.pubsub.clock_started()
            self.pubsub.start()
        await asyncio.gather(*(self.join_node(i, waiting[i]) for i in range(scenario.nodes.bootstrap)))
        join_rng = random.Random(self.rng_churn.getrandbits(64))
        for i in range(scenario.nodes.bootstrap, self.n):
            self.later(join_rng.uniform(0.0, scenario.nodes.join_over),
                       lambda i=i: self.join_node(i, waiting[i]))
        self._schedule_churn()
        workload = scenario.workload
        self._poisson(workload.lookup, self._lookup)
        self._poisson(workload.put, self._put)
        self._poisson(workload.get, self._get)
        interval = scenario.measure.sample_interval
        host = HostLoad()
        try:
            while self.now() < self.stop_at:
                await asyncio.sleep(min(interval, max(0.0, self.stop_at - self.now())))
                host.sample(self.now())
                await self._sample()
                self.events.flush()
                if self.progress is not None:
                    self.progress(min(self.now(), self.stop_at), self.stop_at)
                if self.errors:
                    raise RuntimeError(self.errors[0])
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*(self.stop_node(i, graceful=True) for i in range(self.n)))
            for node in self._spawned:  # started but never joined, or left over from a failed start
                node.stop(graceful=True)
            await asyncio.gather(*(node.wait() for node in self._spawned))
            self.events.flush()
        return {"wall_seconds": round(time.perf_counter() - wall_start, 3), "emulated_seconds": self.stop_at,
                **host.summary()}
