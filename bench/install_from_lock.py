"""Issue 21, "Measure and report": install time from the lock (hash-checked, exactly the tested
set) against the unlocked install from pyproject.toml's ranges, each into a fresh venv from a
fresh clone of the repository, in the same run; and the number of locked packages.

    .venv/bin/python bench/install_from_lock.py [--repeat 1]

Both installs use the same pip, index and wheel cache (~/.cache/pip), so the comparison is the
resolution and checking work, not the download. Appends to results/install_from_lock.json.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, write_result

sys.path.insert(0, str(ROOT / "deps"))
from inventory import locked


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _fresh(tmp: Path, name: str) -> tuple[Path, Path]:
    clone = tmp / name
    _run(["git", "clone", "-q", str(ROOT), str(clone)], tmp)
    _run([sys.executable, "-m", "venv", str(clone / ".venv")], clone)
    return clone, clone / ".venv" / "bin" / "pip"


def install_locked(tmp: Path) -> float:
    clone, pip = _fresh(tmp, "locked")
    t = time.perf_counter()
    _run([str(pip), "install", "-q", "--require-hashes", "--no-deps", "-r", "deps/test.txt"], clone)
    _run([str(pip), "install", "-q", "--no-deps", "--no-build-isolation", "-e", "."], clone)
    return time.perf_counter() - t


def install_unlocked(tmp: Path) -> float:
    clone, pip = _fresh(tmp, "unlocked")
    t = time.perf_counter()
    _run([str(pip), "install", "-q", "-e", ".[test]"], clone)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    runtime, test = locked(ROOT / "deps" / "runtime.txt"), locked(ROOT / "deps" / "test.txt")
    times: dict[str, list[float]] = {"locked": [], "unlocked": []}
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            # Alternate the order so that whichever runs second is not always the one favoured
            # by a cache the first warmed.
            runs = [("unlocked", install_unlocked), ("locked", install_locked)]
            for name, install in runs if i % 2 == 0 else reversed(runs):
                times[name].append(install(Path(d)))
    best = {k: round(min(v), 1) for k, v in times.items()}
    result = {"locked_packages": {"runtime": len(runtime), "test_and_build": len(test) - len(runtime)},
              "install_seconds": best, "ratio_locked_to_unlocked": round(best["locked"] / best["unlocked"], 2)}
    print(result)
    write_result("install_from_lock", result)


if __name__ == "__main__":
    main()
