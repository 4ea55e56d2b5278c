"""Running a fuzz target: under atheris (coverage-guided) when it is installed, else random splices of the
target's seed corpus (the smoke test in the suite draws its inputs with hypothesis, `mutations`). A target is a
function of bytes that raises only on a bug.

    python fuzz/scenario_yaml.py [--seconds N]   # a long run; atheris's own flags pass through
"""

from __future__ import annotations

import argparse
import random
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
    parser.add_argument("--seconds", type=float, default=60.0, help="how long a run without atheris lasts")
    parser.add_argument("--seed", type=int, default=0, help="the mutations' random seed (without atheris)")
    args, rest = parser.parse_known_args()
    try:
        import atheris
    except ImportError:
        atheris = None
    if atheris is not None:
        atheris.Setup([sys.argv[0], str(CORPUS / name), *rest], target)
        atheris.Fuzz()
        return
    rng = random.Random(args.seed)
    corpus = seeds(name)
    deadline = time.monotonic() + args.seconds
    runs = 0
    while time.monotonic() < deadline:
        target(mutate(rng, rng.choice(corpus)))
        runs += 1
    print(f"{name}: {runs} inputs in {args.seconds:g} s (seed {args.seed}), no crash")


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
