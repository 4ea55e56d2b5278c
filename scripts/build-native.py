"""Compile the simulator's hot paths with mypyc into build/native/ (see p2pnode/native.py).

    .venv/bin/python scripts/build-native.py [--out DIR]

Needs mypy (the ``native`` extra) and a C compiler; scripts/setup.sh runs it when both are there. The
modules are the same source as ever: without a build (or after editing one of them, until it is rebuilt)
they run as pure Python. Exits non-zero, with the compiler's or mypy's message, if the build fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["P2PNODE_PURE"] = "1"  # this process imports the sources, never an older build of them

from p2pnode import native  # noqa: E402


def build(out: Path) -> dict:
    from mypyc.build import mypycify
    from setuptools import Distribution
    from setuptools.command.build_ext import build_ext

    sources = [str(native.source_of(name).relative_to(ROOT)) for name in native.MODULES]
    digests = {name: native.digest(native.source_of(name)) for name in native.MODULES}
    with tempfile.TemporaryDirectory(prefix="build-native-") as tmp:
        cwd = os.getcwd()
        os.chdir(ROOT)  # mypyc names modules by their paths from here
        try:
            # Imported modules are read for their types only; their own typing is not this build's business.
            extensions = mypycify(["--follow-imports=silent", *sources], opt_level="3",
                                  target_dir=str(Path(tmp) / "c"))
            command = build_ext(Distribution({"name": "p2pnode-native", "ext_modules": extensions}))
            command.build_lib = str(Path(tmp) / "lib")
            command.build_temp = str(Path(tmp) / "obj")
            command.ensure_finalized()
            command.run()
        finally:
            os.chdir(cwd)
        staging = out.with_name(out.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(Path(tmp) / "lib", staging)
    modules, shared = {}, {}
    for path in sorted(staging.rglob("*.so")):
        relative = path.relative_to(staging)
        name = ".".join(relative.with_name(relative.name.split(".")[0]).parts)
        if name in digests:
            modules[name] = {"file": str(relative), "sha256": digests[name]}
        else:  # mypyc's runtime library shared by the modules, imported by its top-level name
            shared[name] = str(relative)
    missing = set(digests) - set(modules)
    if missing:
        raise SystemExit(f"build-native: no extension built for {', '.join(sorted(missing))}")
    stamp = {"python": sys.implementation.cache_tag, "modules": modules, "shared": shared}
    (staging / "stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)  # a half-built directory is never the one in use
    return stamp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=native.BUILD, help="where the build goes (default: %(default)s)")
    args = parser.parse_args()
    try:
        import mypyc  # noqa: F401
    except ImportError:
        print("build-native: mypyc is not installed (pip install -e '.[native]')", file=sys.stderr)
        return 1
    stamp = build(args.out.resolve())
    print(f"build-native: compiled {', '.join(stamp['modules'])} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
