"""The SBOM of a production install, in CycloneDX JSON: `make sbom` writes dist/sbom.cdx.json.

    python deps/sbom.py [--output dist/sbom.cdx.json]

cyclonedx-py reads deps/runtime.txt (every locked runtime package with its version and
hashes) and pyproject.toml (the portal itself, the root component). The lock carries no
licences, so each component's licence is added from the licence inventory (deps/inventory.py),
and the assets the portal ships (the notice fonts, the favicon) are added as file components
with their licence and SHA-256."""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import inventory

ROOT = inventory.ROOT


def _licences(expression: str) -> list[dict]:
    if " " in expression:  # an SPDX expression (OR / AND)
        return [{"expression": expression}]
    if expression.startswith("LicenseRef-"):
        return [{"license": {"name": expression}}]
    return [{"license": {"id": expression}}]


def build(output: Path) -> dict:
    tool = shutil.which("cyclonedx-py", path=str(Path(sys.executable).parent)) or shutil.which("cyclonedx-py")
    if tool is None:
        raise SystemExit("cyclonedx-py is not installed: run `make setup`")
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "bom.json"
        subprocess.run([tool, "requirements", str(inventory.RUNTIME_LOCK), "--pyproject", str(ROOT / "pyproject.toml"),
                        "--output-reproducible", "--of", "JSON", "--sv", "1.6", "-o", str(raw)], check=True)
        bom = json.loads(raw.read_text(encoding="utf-8"))
    inv = inventory.inventory()
    licence_of = {p["name"]: p["licence"] for p in inv["python_runtime"]}
    for c in bom.get("components", []):
        lic = licence_of.get(inventory.normalise(c["name"]))
        if lic:
            c["licenses"] = _licences(lic)
    for a in inv["assets"]:
        data = (ROOT / a["path"]).read_bytes()
        bom.setdefault("components", []).append({
            "type": "file", "bom-ref": f"file:{a['path']}", "name": a["path"],
            "description": a["name"], "hashes": [{"alg": "SHA-256", "content": hashlib.sha256(data).hexdigest()}],
            "licenses": _licences(a["licence"])})
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(bom, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return bom


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", type=Path, default=ROOT / "dist" / "sbom.cdx.json")
    args = ap.parse_args()
    bom = build(args.output)
    print(f"{args.output}: {len(bom['components'])} components")


if __name__ == "__main__":
    main()
