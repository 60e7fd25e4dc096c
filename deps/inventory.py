"""The licence inventory: every locked runtime package, every npm package the tests run and
every asset the portal ships, each with its licence (SPDX), checked against the allow-list in
deps/licences.toml.

    python deps/inventory.py            # write deps/LICENCES.json
    python deps/inventory.py --check    # exit 1 if a licence is missing or not allowed

Package licences come from the installed package's metadata (PEP 639 License-Expression), or
from deps/licences.toml where the metadata states none in SPDX; run it in the project's venv,
which holds exactly the locked versions (`make setup` installs from the lock)."""
from __future__ import annotations

import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

DEPS = Path(__file__).resolve().parent
ROOT = DEPS.parent
RUNTIME_LOCK = DEPS / "runtime.txt"
OUTPUT = DEPS / "LICENCES.json"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_HASH = re.compile(r"--hash=(sha256):([0-9a-f]{64})")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path = RUNTIME_LOCK) -> dict[str, dict]:
    """name → {"version", "hashes"} for each pinned requirement of a `uv pip compile` lock."""
    out: dict[str, dict] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line)
        if m:
            current = out.setdefault(normalise(m[1]), {"version": m[2], "hashes": []})
        elif not line.startswith((" ", "\t")):
            current = None
        if current is not None:
            current["hashes"] += [h for _alg, h in _HASH.findall(line)]
    return out


def config() -> dict:
    return tomllib.loads((DEPS / "licences.toml").read_text(encoding="utf-8"))


def allowed(expression: str, accepted: set[str]) -> bool:
    """A flat SPDX expression: every AND term accepted, at least one OR alternative."""
    if "(" in expression or ")" in expression:
        return False
    return any(all(term.strip() in accepted for term in alt.split(" AND "))
               for alt in expression.split(" OR "))


def package_licence(name: str, overrides: dict[str, str]) -> str | None:
    if name in overrides:
        return overrides[name]
    try:
        meta = metadata.distribution(name).metadata
    except metadata.PackageNotFoundError:
        return None
    expression = meta.get("License-Expression")
    if expression:
        return expression.strip()
    # Older metadata: a License field that is exactly an SPDX id counts; prose does not.
    field = (meta.get("License") or "").strip()
    return field if field in _SPDX_IDS else None


# The SPDX ids a bare License field is taken for (any other value needs deps/licences.toml).
_SPDX_IDS = frozenset({"MIT", "MIT-0", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0", "ISC", "PSF-2.0",
                       "Unlicense", "0BSD", "MPL-2.0", "LGPL-3.0-only", "LGPL-2.1-only", "GPL-2.0-only",
                       "GPL-3.0-only", "AGPL-3.0-only"})


def npm_packages() -> list[dict]:
    lock = ROOT / "package-lock.json"
    if not lock.exists():
        return []
    packages = json.loads(lock.read_text(encoding="utf-8")).get("packages", {})
    return [{"name": path.split("node_modules/")[-1], "version": p.get("version"), "licence": p.get("license"),
             "scope": "test" if p.get("dev") else "test-tool"}
            for path, p in sorted(packages.items()) if path]


def inventory() -> dict:
    cfg = config()
    overrides = {normalise(k): v for k, v in cfg.get("packages", {}).items()}
    python = [{"name": name, "version": pin["version"], "licence": package_licence(name, overrides)}
              for name, pin in sorted(locked().items())]
    assets = [{"name": a["name"], "path": a["path"], "licence": a["licence"], "licence_file": a.get("licence_file")}
              for a in cfg.get("assets", [])]
    return {"python_runtime": python, "npm_test": npm_packages(), "assets": assets}


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def problems(inv: dict) -> list[str]:
    cfg = config()
    accepted = {lic for group in cfg["allowed"].values() for lic in group}
    found = []
    for p in inv["python_runtime"]:
        if (installed := _installed(p["name"])) != p["version"]:
            found.append(f"{p['name']}: locked {p['version']}, installed {installed} (run `make setup`)")
        if not p["licence"]:
            found.append(f"{p['name']} {p['version']}: no licence known (add it to deps/licences.toml)")
        elif not allowed(p["licence"], accepted):
            found.append(f"{p['name']} {p['version']}: {p['licence']} is not on the allow-list")
    for p in inv["npm_test"]:
        if not p["licence"]:
            found.append(f"npm {p['name']} {p['version']}: no licence in package-lock.json")
        elif not allowed(p["licence"], accepted):
            found.append(f"npm {p['name']} {p['version']}: {p['licence']} is not on the allow-list")
    for a in inv["assets"]:
        if not (ROOT / a["path"]).exists():
            found.append(f"asset {a['path']}: listed but missing")
        if a.get("licence_file") and not (ROOT / a["licence_file"]).exists():
            found.append(f"asset {a['path']}: licence text {a['licence_file']} missing")
        if not allowed(a["licence"], accepted):
            found.append(f"asset {a['path']}: {a['licence']} is not on the allow-list")
    return found


def main(argv: list[str]) -> int:
    inv = inventory()
    found = problems(inv)
    for line in found:
        print(line, file=sys.stderr)
    if "--check" not in argv:
        OUTPUT.write_text(json.dumps(inv, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"{OUTPUT.relative_to(ROOT)}: {len(inv['python_runtime'])} Python runtime packages, "
              f"{len(inv['npm_test'])} npm test packages, {len(inv['assets'])} assets")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
