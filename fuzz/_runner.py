"""Running a fuzz target: under atheris (coverage-guided) when it is installed, else hypothesis over byte strings
mutated from the target's seed corpus. A target is a function of bytes that raises only on a bug.

    python fuzz/scenario_yaml.py [--seconds N]   # a long run; atheris's own flags pass through
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def seeds(name: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((CORPUS / name).iterdir()) if path.is_file()]


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


def main(name: str, target: Callable[[bytes], None]) -> None:
    parser = argparse.ArgumentParser(description=f"fuzz the {name} target")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long a hypothesis run lasts")
    args, rest = parser.parse_known_args()
    try:
        import atheris
    except ImportError:
        atheris = None
    if atheris is not None:
        atheris.Setup([sys.argv[0], str(CORPUS / name), *rest], target)
        atheris.Fuzz()
        return
    from hypothesis import HealthCheck, given, settings

    deadline = time.monotonic() + args.seconds
    runs = 0

    @settings(max_examples=10**9, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutations(name))
    def run(data: bytes) -> None:
        nonlocal runs
        runs += 1
        target(data)
        if time.monotonic() > deadline:
            raise _Done

    try:
        run()
    except _Done:
        pass
    print(f"{name}: {runs} inputs in {args.seconds:g} s, no crash")


class _Done(Exception):
    pass
