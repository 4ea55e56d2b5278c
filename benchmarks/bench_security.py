"""What the security layer's proofs cost on this machine: S/Kademlia's node-ID puzzles (solving: key
generations for the static puzzle, hashes for the dynamic one; verifying: one hash each) and the proof of
work for DHT writes (minting: hashes; verifying: one hash), per difficulty.

Solving is measured as the time of one try times the tries it takes on average (2**c); the tries are
counted over real solutions at low difficulties, where that is cheap, to show that the average holds.

Usage: nice -n 10 .venv/bin/python benchmarks/bench_security.py [--bits 4 8 12 16 20 24] [--samples 8]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time

from p2pnode.identity import Keypair
from p2pnode.security.pow import mint, stamp_bits, stamp_payload
from p2pnode.security.puzzles import dynamic_bits, solve_dynamic, solve_static, static_bits


def per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 8, 12, 16, 20, 24])
    parser.add_argument("--samples", type=int, default=8, help="real solutions per low difficulty")
    args = parser.parse_args()

    keygen = per_call(lambda i: Keypair.from_seed(hashlib.sha256(b"k%d" % i).digest()), 2000)
    ids = [Keypair.from_seed(hashlib.sha256(b"id%d" % i).digest()).peer_id.kad_id for i in range(64)]
    sha = per_call(lambda i: hashlib.sha256((ids[i % 64] ^ i).to_bytes(32, "big")).digest(), 200_000)
    static_bits.cache_clear()
    dynamic_bits.cache_clear()
    verify_static = per_call(lambda i: static_bits(ids[i % 64] ^ (i << 8)), 50_000)
    verify_dynamic = per_call(lambda i: dynamic_bits(ids[i % 64], i.to_bytes(4, "big")), 50_000)
    publisher = Keypair.from_seed(bytes(32)).peer_id
    payloads = [stamp_payload(b"key%d" % i, bytes(256), publisher, i) for i in range(64)]
    start, hashes = time.perf_counter(), 0
    for payload in payloads:
        hashes += mint(payload, 10)[1]
    pow_hash = (time.perf_counter() - start) / hashes
    stamps = [mint(p, 10)[0] for p in payloads]
    verify_pow = per_call(lambda i: stamp_bits(payloads[i % 64], stamps[i % 64]), 50_000)
    print(f"one try: key generation {keygen * 1e6:.1f} us, dynamic-puzzle hash {sha * 1e6:.2f} us, "
          f"minting hash {pow_hash * 1e6:.2f} us (scenario security.pow_hash_seconds)")
    print(f"verify (uncached): static {verify_static * 1e6:.2f} us, dynamic {verify_dynamic * 1e6:.2f} us, "
          f"stamp {verify_pow * 1e6:.2f} us; minting took {hashes / len(payloads) / 2**10:.2f} x 2^10 hashes")
    print()
    print(f"{'bits':>4}  {'static: solve':>14}  {'dynamic: solve':>15}  {'PoW: mint':>10}  "
          f"{'measured tries/2^c (static, dynamic)':>38}")
    for c in args.bits:
        measured = ""
        if c <= 12:
            static_tries = [solve_static(os.urandom(32), c)[1] for _ in range(args.samples)]
            solve_dynamic.cache_clear()
            dynamic_tries = [solve_dynamic(kad_id, c)[1] for kad_id in ids[: args.samples]]
            measured = (f"{sum(static_tries) / len(static_tries) / 2**c:.2f}, "
                        f"{sum(dynamic_tries) / len(dynamic_tries) / 2**c:.2f}")
        print(f"{c:>4}  {_seconds(keygen * 2**c):>14}  {_seconds(sha * 2**c):>15}  {_seconds(pow_hash * 2**c):>10}  "
              f"{measured:>38}")


def _seconds(t: float) -> str:
    if t < 1:
        return f"{t * 1000:.2f} ms"
    if t < 3600:
        return f"{t:.1f} s"
    return f"{t / 3600:.1f} h"


if __name__ == "__main__":
    main()
