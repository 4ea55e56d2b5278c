"""Fuzz targets and the one runner for them.

A target is a function of bytes that raises only on a bug, declared with ``@target(name, seeds=…)`` in a module
of this package; its seed corpus is ``corpus/<name>/`` (``seeds`` makes it from real encodings:
``python -m fuzz --write-seeds``). A run takes inputs from atheris (coverage-guided) when it is installed
(the ``fuzz`` extra), else from random splices of the seed corpus; either way an input that takes longer
than ``--timeout`` seconds is a hang, reported like a crash. The smoke test in the suite draws its inputs with
hypothesis (``mutations``).

    python -m fuzz NAME [--seconds N]       # one target, in this process
    python -m fuzz NAME --replay FILE…      # the target once on each input (a crash's), within --timeout
    python -m fuzz --all --minutes N [--jobs J]   # every target, J at a time, in N minutes in all; a table
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
Check = Callable[[bytes], None]


@dataclass(frozen=True)
class Target:
    name: str
    check: Check
    seeds: Callable[[], list[bytes]] | None  # real encodings, written to corpus/<name>/


TARGETS: dict[str, Target] = {}


def target(name: str, *, seeds: Callable[[], list[bytes]] | None = None) -> Callable[[Check], Check]:
    """Declare ``check`` as the fuzz target ``name``."""

    def register(check: Check) -> Check:
        if name in TARGETS and TARGETS[name].check is not check:
            raise ValueError(f"fuzz target {name!r} declared twice")
        TARGETS[name] = Target(name, check, seeds)
        return check

    return register


def all_targets() -> dict[str, Target]:
    """Every target, from every module of this package."""
    package = Path(__file__).resolve().parent
    for module in pkgutil.iter_modules([str(package)]):
        if not module.name.startswith("_"):
            importlib.import_module(f"fuzz.{module.name}")
    return dict(sorted(TARGETS.items()))


# What coverage is measured in (instrumenting every loaded module, the standard library too, takes minutes).
INSTRUMENTED = ("p2pnode", "experiment", "sim", "multiaddr", "fuzz")


def _instrumented_targets() -> dict[str, Target]:
    """``all_targets()``, imported under atheris's coverage instrumentation when atheris is installed."""
    try:
        import atheris
    except ImportError:
        return all_targets()
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        return all_targets()


def seeds(name: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((CORPUS / name).iterdir()) if path.is_file()]


def write_seeds(found: dict[str, Target]) -> None:
    for t in found.values():
        if t.seeds is None:
            continue
        folder = CORPUS / t.name
        folder.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(t.seeds()):
            (folder / f"seed-{i:02d}.bin").write_bytes(data)
        print(f"{t.name}: {len(list(folder.iterdir()))} seeds in {folder}")


def mutations(name: str):
    """A hypothesis strategy of inputs: a seed with a slice replaced by random bytes, or random bytes."""
    from hypothesis import strategies as st

    corpus = seeds(name)

    def splice(seed: bytes, at: int, cut: int, junk: bytes) -> bytes:
        at %= len(seed) + 1
        return seed[:at] + junk + seed[at + cut:]

    return st.one_of(
        st.builds(splice, st.sampled_from(corpus), st.integers(0, 1 << 16), st.integers(0, 64), st.binary(max_size=64)),
        st.binary(max_size=512),
    )


class Hang(Exception):
    """An input that took longer than the timeout."""


def _alarm(signum, frame):
    raise Hang("input took longer than the timeout")


def run(t: Target, *, seconds: float, seed: int, timeout: float, workdir: Path | None, extra: list[str],
        splice: bool = False) -> None:
    """Fuzz ``t`` for ``seconds`` in this process (``splice``: without atheris even where it is installed);
    prints one summary line ``<name>: …`` at the end, or raises what the input that crashed it raised."""
    try:
        import atheris
    except ImportError:
        atheris = None
    if splice:
        atheris = None
    if atheris is not None:
        corpus_dirs = [str(CORPUS / t.name)]
        if workdir is not None:  # new inputs go to the first folder: keep them out of the seed corpus
            (workdir / "corpus").mkdir(parents=True, exist_ok=True)
            corpus_dirs.insert(0, str(workdir / "corpus"))
        flags = [f"-max_total_time={max(1, round(seconds))}", f"-timeout={max(1, round(timeout))}",
                 f"-seed={seed}", "-rss_limit_mb=2048", "-print_final_stats=1"]
        if workdir is not None:
            flags.append(f"-artifact_prefix={workdir}/")
        atheris.Setup([sys.argv[0], *flags, *extra, *corpus_dirs], t.check)
        atheris.Fuzz()
        return
    rng = random.Random(seed)
    corpus = seeds(t.name)
    previous = signal.signal(signal.SIGALRM, _alarm)
    start = time.monotonic()
    deadline = start + seconds
    runs = 0
    try:
        while time.monotonic() < deadline:
            data = mutate(rng, rng.choice(corpus))
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                t.check(data)
            except BaseException:
                if workdir is not None:
                    workdir.mkdir(parents=True, exist_ok=True)
                    (workdir / f"crash-{runs}.bin").write_bytes(data)
                print(f"{t.name}: crash on input {data[:200]!r} after {runs} inputs", file=sys.stderr)
                raise
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            runs += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.monotonic() - start
    print(f"{t.name}: {runs} inputs in {elapsed:.0f} s ({runs / elapsed:.0f}/s, seed {seed}), no crash")


def replay(t: Target, files: list[Path], *, timeout: float) -> int:
    """Run ``t`` once on each file, with ``timeout`` seconds of CPU time each; 1 if one raised or hung."""
    failed = 0
    previous = signal.signal(signal.SIGVTALRM, _alarm)
    try:
        for path in files:
            data = path.read_bytes()
            started = time.process_time()
            signal.setitimer(signal.ITIMER_VIRTUAL, timeout)
            try:
                t.check(data)
            except BaseException as exc:  # noqa: BLE001 - what the target raised is the report
                failed = 1
                print(f"{path}: {type(exc).__name__}: {str(exc)[:200]}")
            else:
                print(f"{path}: ok in {time.process_time() - started:.3f} s of CPU")
            finally:
                signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    finally:
        signal.signal(signal.SIGVTALRM, previous)
    return failed


def mutate(rng: random.Random, seed: bytes) -> bytes:
    """A few random splices: bytes replaced, inserted, deleted or copied from elsewhere in the input."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        at = rng.randint(0, len(data))
        choice = rng.random()
        if choice < 0.4:
            data[at:at + rng.randint(0, 8)] = rng.randbytes(rng.randint(0, 8))
        elif choice < 0.7:
            del data[at:at + rng.randint(1, 32)]
        elif data:
            start = rng.randrange(len(data))
            data[at:at] = data[start:start + rng.randint(1, 64)]
    return bytes(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description="run fuzz targets (fuzz/)")
    parser.add_argument("names", nargs="*", help="targets to run (default with --all: every one)")
    parser.add_argument("--all", action="store_true", help="every target in turn, each in its own process")
    parser.add_argument("--list", action="store_true", help="list the targets")
    parser.add_argument("--write-seeds", action="store_true", help="write each target's seeds to corpus/")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long one target runs")
    parser.add_argument("--minutes", type=float, help="with --all: the whole run's length, shared by the targets")
    parser.add_argument("--jobs", type=int, default=1, help="with --all: targets run at once")
    parser.add_argument("--seed", type=int, default=0, help="the mutations' random seed")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds after which one input is a hang")
    parser.add_argument("--replay", type=Path, nargs="+", metavar="FILE",
                        help="run the target once on each file (a crash input); exit 1 if one fails or hangs")
    parser.add_argument("--splice", action="store_true", help="random splices of the seeds even with atheris")
    parser.add_argument("--out", type=Path, help="folder for crash inputs, new corpus entries and logs")
    args, extra = parser.parse_known_args(argv)
    one_run = len(args.names) == 1 and not (args.all or args.list or args.write_seeds or args.splice or args.replay)
    found = _instrumented_targets() if one_run else all_targets()
    unknown = [n for n in args.names if n not in found]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(found)}")
    if args.list:
        print("\n".join(found))
    elif args.replay:
        sys.exit(replay(found[args.names[0]], args.replay, timeout=args.timeout))
    elif args.write_seeds:
        write_seeds({n: found[n] for n in args.names} if args.names else found)
    elif args.all or len(args.names) != 1:
        from fuzz._campaign import campaign

        names = args.names or list(found)
        jobs = max(1, min(args.jobs, len(names)))
        seconds = args.minutes * 60 * jobs / len(names) if args.minutes else args.seconds
        sys.exit(campaign(names, seconds=seconds, seed=args.seed, timeout=args.timeout, out=args.out,
                          extra=["--splice", *extra] if args.splice else extra, jobs=jobs))
    else:
        workdir = args.out / args.names[0] if args.out else None
        run(found[args.names[0]], seconds=args.seconds, seed=args.seed, timeout=args.timeout, workdir=workdir,
            extra=extra, splice=args.splice)
