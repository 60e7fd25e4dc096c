"""Issue 21: accountable dependencies. The locks cover pyproject.toml with a hash for every
package and are what the venv holds; the SBOM lists every locked runtime package with its
version and hash; every component and shipped asset has a licence on the allow-list; and the
deadline calendar changes only on purpose when `holidays` is upgraded."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from portal.calendar import HOLIDAY_FIRST_YEAR, HOLIDAY_LAST_YEAR, is_business_day

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deps"))
import inventory  # noqa: E402

CALENDAR = Path(__file__).resolve().parent / "data" / "jp_closed_weekdays.json"
# The years listed date by date (a change shows as a readable diff); all others by a digest.
LISTED_YEARS = range(2019, 2036)


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("lock, extras", [("runtime.txt", ()), ("test.txt", ("test",))])
def test_every_dependency_is_locked_with_hashes_within_its_range(lock, extras):
    pins = inventory.locked(ROOT / "deps" / lock)
    project = _pyproject()["project"]
    wanted = [*project["dependencies"], *(r for e in extras for r in project["optional-dependencies"][e])]
    for spec in wanted:
        req = Requirement(spec)
        pin = pins.get(inventory.normalise(req.name))
        assert pin is not None, f"{req.name} is not in deps/{lock}: run `make lock`"
        assert req.specifier.contains(pin["version"], prereleases=True), \
            f"deps/{lock} pins {req.name}=={pin['version']}, outside {req.specifier}: run `make lock`"
    assert all(p["hashes"] for p in pins.values()), "a locked package without a hash"


def test_the_test_lock_runs_the_same_runtime_versions_and_the_venv_holds_them():
    runtime, test = inventory.locked(ROOT / "deps" / "runtime.txt"), inventory.locked(ROOT / "deps" / "test.txt")
    for name, pin in runtime.items():
        assert test[name]["version"] == pin["version"], name
        assert set(pin["hashes"]) <= set(test[name]["hashes"]), name
    for name, pin in test.items():
        assert metadata.version(name) == pin["version"], f"{name}: the venv differs from the lock (`make setup`)"


def test_licences_are_known_and_allowed_and_the_inventory_is_current():
    inv = inventory.inventory()
    assert inventory.problems(inv) == []
    assert {p["name"] for p in inv["python_runtime"]} == set(inventory.locked())
    assert any(a["licence"] == "OFL-1.1" for a in inv["assets"]) and inv["npm_test"]
    committed = json.loads((ROOT / "deps" / "LICENCES.json").read_text(encoding="utf-8"))
    assert committed == inv, "deps/LICENCES.json is stale: run `make licences`"


def test_an_unknown_or_unaccepted_licence_is_a_problem(monkeypatch):
    inv = inventory.inventory()
    first = inv["python_runtime"][0]
    bad = {**inv, "python_runtime": [{**first, "licence": "GPL-3.0-only"}, {**first, "licence": None}],
           "assets": [], "npm_test": [{"name": "x", "version": "1", "licence": "SSPL-1.0", "scope": "test"}]}
    found = inventory.problems(bad)
    assert len(found) == 3 and "GPL-3.0-only is not on the allow-list" in found[0] and "no licence" in found[1]
    assert inventory.allowed("Apache-2.0 OR BSD-3-Clause", {"BSD-3-Clause"})
    assert not inventory.allowed("MIT AND GPL-2.0-only", {"MIT"})


def test_the_sbom_lists_every_locked_runtime_package_with_version_and_hash(tmp_path):
    tool = shutil.which("cyclonedx-py", path=str(Path(sys.executable).parent))
    assert tool, "cyclonedx-py is missing from the venv (`make setup`)"
    out = tmp_path / "sbom.cdx.json"
    subprocess.run([sys.executable, str(ROOT / "deps" / "sbom.py"), "--output", str(out)], check=True, cwd=ROOT)
    bom = json.loads(out.read_text(encoding="utf-8"))
    assert bom["bomFormat"] == "CycloneDX" and bom["metadata"]["component"]["name"] == "ttr-portal"
    components = {inventory.normalise(c["name"]): c for c in bom["components"]}
    for name, pin in inventory.locked().items():
        c = components.get(name)
        assert c is not None, f"{name} missing from the SBOM"
        assert c["version"] == pin["version"]
        # The hashes of the distributions the lock accepts, on the component's distribution reference.
        hashes = {h["content"] for ref in c.get("externalReferences", []) if ref["type"] == "distribution"
                  for h in ref.get("hashes", [])}
        assert hashes == set(pin["hashes"]), name
        assert c.get("licenses"), f"{name}: no licence in the SBOM"
    assets = [c for c in bom["components"] if c.get("type") == "file"]
    assert any("IBMPlexSansJP" in c["name"] for c in assets)


def _closed_weekdays(year: int) -> list[str]:
    d, out = date(year, 1, 1), []
    while d.year == year:
        if d.weekday() < 5 and not is_business_day(d):
            out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def _calendar() -> dict:
    everything = "\n".join(day for y in range(HOLIDAY_FIRST_YEAR, HOLIDAY_LAST_YEAR + 1) for day in _closed_weekdays(y))
    return {"holidays": metadata.version("holidays"), "range": [HOLIDAY_FIRST_YEAR, HOLIDAY_LAST_YEAR],
            "sha256_all_years": hashlib.sha256(everything.encode()).hexdigest(),
            "closed_weekdays": {str(y): _closed_weekdays(y) for y in LISTED_YEARS}}


def test_the_deadline_calendar_changes_only_on_purpose():
    """An upgrade of `holidays` that moves any closed day fails here. If the change is right
    (a new holiday by law), regenerate with PORTAL_UPDATE_CALENDAR=1 and say so in the commit."""
    now = _calendar()
    if os.environ.get("PORTAL_UPDATE_CALENDAR"):
        CALENDAR.write_text(json.dumps(now, indent=1) + "\n", encoding="utf-8")
    saved = json.loads(CALENDAR.read_text(encoding="utf-8"))
    for year in LISTED_YEARS:
        assert now["closed_weekdays"][str(year)] == saved["closed_weekdays"][str(year)], \
            f"the closed days of {year} changed (holidays {saved['holidays']} → {now['holidays']})"
    assert now["range"] == saved["range"] and now["sha256_all_years"] == saved["sha256_all_years"], \
        f"the closed days outside {LISTED_YEARS.start}–{LISTED_YEARS.stop - 1} changed"
    # Spot checks a person can read: 2027-01-01 closed (year end and New Year), 2026-11-23 勤労感謝の日.
    assert "2027-01-01" in saved["closed_weekdays"]["2027"] and "2026-11-23" in saved["closed_weekdays"]["2026"]
