"""One emulated run: real ``p2pnode`` processes in the hosts of an emulated network, driven by a scenario.

The driver plays the simulator's part with real processes and the same rules (``experiment/``): the same
plan of nodes, keys and regions, the bootstrap nodes first and the others spread over ``nodes.join_over``,
the churn (SIGKILL for a crash, SIGTERM for a graceful leave, a restart after the offline time), the DHT
workload, the pub-sub workload (``emulator/pubsub.py``) and the formation check, writing the same events.
Each node answers over its ``--control stdio`` pipe with its own measurements (latency from its clock, hops,
requests), so the pipe's delay never enters a figure. Event times are seconds since the run started.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from emulator.pubsub import PubSubWorkload
from experiment.churn import Churn, join_delays
from experiment.formation import Formation
from experiment.mcp import McpWorkload, node_section
from experiment.oracle import LiveSet, by_bucket
from experiment.plan import Plan
from experiment.workload import DhtWorkload, Operations
from p2pnode.eventlog import EventWriter
from p2pnode.identity import PeerId

QUIC_PORT = 4001
TCP_PORT = 4002
START_TIMEOUT = 60.0
VERIFY_INTERVAL = 5.0


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
        self.bootstrapped = False  # its join lookup has finished (the node says so)
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
            elif message.get("event") == "bootstrapped":
                self.bootstrapped = True
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
    def __init__(self, scenario: Any, plan: Plan, net: Any, events: EventWriter, run_dir: Path,
                 progress: Callable[[float, float], None] | None = None, transport: str = "quic",
                 log_level: str = "warning"):
        self.scenario = scenario
        self.plan = plan
        self.net = net
        self.events = events
        self.run_dir = run_dir
        self.progress = progress
        self.transport = transport  # the one nodes bootstrap over and prefer; both are listened on
        self.log_level = log_level  # of each node's log, nodes/<i>/node.log
        self.n = plan.n
        self.rng_churn, self.rng_work = plan.rng_churn, plan.rng_work
        self.keypairs, self.peer_ids, self.kad_ids = plan.keypairs, plan.peer_ids, plan.kad_ids
        self._kad_ids_by_text = {str(p): p.kad_id for p in self.peer_ids}
        self.hosts = list(net.hosts)[: self.n]
        self.nodes: list[NodeProcess | None] = [None] * self.n  # joined (live) nodes
        self.started_once = [False] * self.n
        self._spawned: list[NodeProcess] = []
        self.live = LiveSet()
        self.dht = DhtWorkload(scenario, self.rng_work, self.live, events)
        self.formation = Formation(scenario, plan, self.live, events)
        self._last_verify = float("-inf")
        self._verify_took = 0.0
        self.t0 = 0.0
        self.end, self.stop_at = plan.end, plan.stop_at
        self._tasks: set[asyncio.Task] = set()
        self.errors: list[str] = []
        self.pubsub = PubSubWorkload(self) if scenario.pubsub is not None else None
        self.mcp = McpWorkload(scenario, self.n, self.rng_work, events)
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
{self._security_config()}{self._mcp_config(i)}{pubsub}[log]
level = "{self.log_level}"
events_file = "events.csv"
node_index = {i}
"""
        path = directory / "node.toml"
        path.write_text(text)
        return path

    def _security_config(self) -> str:
        """The scenario's security switches (docs/security.md), as the simulator applies them; its rate limits
        only when it sets them (0 there: the node's own defaults, which a real node always enforces)."""
        sec = self.scenario.security
        lines = ["[security]", f"puzzle_static = {sec.puzzle_static}", f"puzzle_dynamic = {sec.puzzle_dynamic}",
                 f"siblings = {sec.siblings}", f"pow_difficulty = {sec.pow_difficulty}"]
        if sec.rate_limit_per_peer and sec.total_rate_limit:
            lines += [f"rate_limit_per_peer = {max(1, round(sec.rate_limit_per_peer))}",
                      f"total_rate_limit = {max(1, round(sec.total_rate_limit))}"]
        return "\n".join(lines) + "\n"

    def _mcp_config(self, i: int) -> str:
        """Node i's [mcp] section: off unless the scenario makes MCP calls; the same rule as the simulator's
        (experiment.mcp.node_section). Its HTTP listener is on the host's own loopback."""
        if self.scenario.mcp is None:
            return "[mcp]\nenabled = false\n"
        section = node_section(self.scenario, i in self.plan.mcp_providers)
        tables = {key: section.pop(key) for key in list(section) if isinstance(section[key], dict)}
        lines = ["[mcp]", *(f"{key} = {json.dumps(value)}" for key, value in section.items())]
        for name, table in tables.items():
            lines += [f"[mcp.{name}]", *(f"{json.dumps(key)} = {json.dumps(value)}" for key, value in table.items())]
        return "\n".join(lines) + "\n"

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

    def later(self, delay: float, fn: Callable[[], Any]) -> None:
        """Run ``fn`` (a function or a coroutine function) after ``delay`` seconds, unless the run is over."""
        async def run() -> None:
            await asyncio.sleep(max(0.0, delay))
            if self.now() < self.stop_at:
                result = fn()
                if inspect.isawaitable(result):
                    await result

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
        if self.scenario.churn is None:
            return
        churn = Churn(self.scenario.churn, self.rng_churn)

        def leave(i: int) -> Callable[[], Any]:
            async def act() -> None:
                graceful, offline = churn.departure()
                await self.stop_node(i, graceful)
                self.later(offline, rejoin(i))
            return act

        def rejoin(i: int) -> Callable[[], Any]:
            async def act() -> None:
                await self.start_node(i)
                self.later(churn.session(), leave(i))
            return act

        for i, at in churn.first_departures(self.scenario):
            self.later(at, leave(i))

    def _operate(self, operations: Operations, action: Callable[[NodeProcess, int], Any]) -> None:
        async def tick() -> None:
            while self.now() < self.end:
                acting = operations.pick(self.nodes)
                if acting is not None:
                    self.later(0, lambda acting=acting: action(*acting))
                await asyncio.sleep(operations.gap())

        self.later(self.scenario.warmup + operations.gap(), tick)

    # ---- workload ----------------------------------------------------------------------------------

    async def _lookup(self, node: NodeProcess, i: int) -> None:
        key = self.dht.lookup_key()
        answer = await node.call("find_node", key_hex=key.hex())
        if answer.get("ok"):
            self.dht.lookup_done(self.now(), i, self.kad_ids[i], key, map(self._kad_id, answer["peers"]),
                                 answer["latency"], answer["hops"], answer["requests"])

    async def _put(self, node: NodeProcess, i: int) -> None:
        key, value = self.dht.put_item()
        answer = await node.call("put", key_hex=key.hex(), value_hex=value.hex())
        if answer.get("ok"):
            self.dht.put_done(self.now(), i, key, answer["version"], answer["replicas"], answer["latency"],
                              answer["requests"])

    async def _get(self, node: NodeProcess, i: int) -> None:
        item = self.dht.get_item()
        if item is None:
            return
        key, version = item
        answer = await node.call("get", key_hex=key.hex())
        if answer.get("ok"):
            found = answer["version"] if answer["found"] else None
            self.dht.get_done(self.now(), i, version, found, answer["latency"], answer["hops"], answer["requests"])

    async def _mcp_call(self, node: NodeProcess, i: int) -> None:
        """A local agent's tools/call, handed to the node's server over its pipe and timed by the node."""
        answer = await node.call("mcp", timeout=self.scenario.mcp.request_timeout + 30, message=self.mcp.request())
        if answer.get("ok"):
            self.mcp.answered(self.now(), i, answer["latency"], answer["response"])

    async def _find_peer(self, node: NodeProcess, i: int) -> None:
        j = self.dht.find_peer_target(self.nodes, i)
        if j is None:
            return
        answer = await node.call("find_peer", peer=str(self.peer_ids[j]))
        if answer.get("ok"):
            self.dht.find_peer_done(self.now(), i, answer["found"], answer["latency"], answer["hops"],
                                    answer["requests"])

    async def _provide(self, node: NodeProcess, i: int) -> None:
        key = self.dht.provide_key()
        answer = await node.call("provide", key_hex=key.hex())
        if answer.get("ok"):
            self.dht.provide_done(self.now(), i, key, answer["peers"], answer["latency"], answer["requests"])

    async def _find_providers(self, node: NodeProcess, i: int) -> None:
        key = self.dht.find_providers_key()
        if key is None:
            return
        answer = await node.call("find_providers", key_hex=key.hex(), count=1)
        if answer.get("ok"):
            self.dht.find_providers_done(self.now(), i, len(answer["providers"]), answer["latency"], answer["hops"],
                                         answer["requests"])

    # ---- sampling and formation --------------------------------------------------------------------

    async def _sample(self) -> None:
        now = self.now()
        live = [(i, n) for i, n in enumerate(self.nodes) if n is not None]
        self.events.write(now, "live", value=len(live))
        if not live:
            return
        answers = await asyncio.gather(*(n.call("status", timeout=10) for _, n in live), return_exceptions=True)
        statuses = {i: a for (i, _), a in zip(live, answers, strict=True) if isinstance(a, dict) and a.get("ok")}
        up = {i for i, _ in live}
        checked = [i for i in self.formation.nodes if i in up]
        tables = [(self.kad_ids[i], bool(statuses[i]["bootstrapped"]),
                   by_bucket(self.kad_ids[i], map(self._kad_id, statuses[i]["table"])))
                  for i in checked if i in statuses]
        due = self.formation.sample(now, tables) and len(tables) == len(checked)
        if self.pubsub is not None:
            self.pubsub.sample(now, statuses)
        # Unlike in simulation, a verification round costs the nodes real CPU (a lookup from every node, and
        # new connections): run it when every table is complete, else at most every VERIFY_INTERVAL s and
        # never more than a third of the time, so it cannot swamp them.
        origins = [i for i in checked if self.nodes[i] is not None]  # still up after the status round
        throttled = now - self._last_verify < max(VERIFY_INTERVAL, 3 * self._verify_took)
        if due and origins and (self.formation.complete or not throttled):
            self._last_verify = now
            await self._verify_formation(origins)
            self._verify_took = self.now() - now

    async def _verify_formation(self, origins: list[int]) -> None:
        """Lookups for one key from every checked live node at once, judged when the last one returns."""
        key = self.formation.start_round(self.rng_work)
        answers = await asyncio.gather(*(self.nodes[i].call("find_node", key_hex=key.hex()) for i in origins),
                                       return_exceptions=True)
        results = [(self.kad_ids[i], {self._kad_id(p) for p in a["peers"]}
                    if isinstance(a, dict) and a.get("ok") else None) for i, a in zip(origins, answers, strict=True)]
        self.formation.round_done(self.now(), key, results)

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
        for i, delay in join_delays(scenario, self.rng_churn):
            self.later(delay, lambda i=i: self.join_node(i, waiting[i]))
        self._schedule_churn()
        actions = {"lookup": self._lookup, "put": self._put, "get": self._get, "find_peer": self._find_peer,
                   "provide": self._provide, "find_providers": self._find_providers}
        for kind, operations in self.dht.operations.items():
            self._operate(operations, actions[kind])
        if self.mcp.operations is not None:
            self._operate(self.mcp.operations, self._mcp_call)
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
