"""Auditors: exports with signed manifests, the offline verifier, and signed checkpoints that
catch an attacker who rewrites the table and recomputes every hash."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from crypto.audit_verify import verify_export
from tests.conftest import IS_PG, audit_events, sign_in


@pytest.fixture
def auditor(app, factory):
    # Some history to export: sign-ins and failures of a few people.
    for _ in range(3):
        c = app.test_client()
        sign_in(c, factory.user("filer"))
    a = factory.user("auditor", compartments=())
    client = app.test_client()
    sign_in(client, a)
    return client


def _pem(app):
    from portal.audit.checkpoints import signing_key

    return signing_key(str(app.config["SETTINGS"].audit_key_path)).public_key_pem()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_verifies_offline_and_is_itself_audited(app, auditor, fmt):
    resp = auditor.get(f"/audit/export?format={fmt}")
    assert resp.status_code == 200
    data = resp.get_data()
    result = verify_export(data, _pem(app))
    assert result.ok, result.problem
    assert result.count >= 5
    assert [e.action for e in audit_events(app, "audit.export")] == ["audit.export"]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def _join(lines: list[bytes]) -> bytes:
    return b"".join(l + b"\n" for l in lines)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_tampering_is_named(app, auditor, fmt):
    data = auditor.get(f"/audit/export?format={fmt}").get_data()
    pem = _pem(app)
    lines = _lines(data)
    first = 1 if fmt == "csv" else 0  # the CSV header
    cases = {}
    modified = list(lines)
    modified[first + 2] = modified[first + 2].replace(b"auth.signin", b"auth.signix", 1)
    cases["modified"] = _join(modified)
    cases["missing"] = _join(lines[:first + 1] + lines[first + 2:])
    swapped = list(lines)
    swapped[first + 1], swapped[first + 2] = swapped[first + 2], swapped[first + 1]
    cases["reordered"] = _join(swapped)
    cases["added"] = _join(lines[:first + 2] + [lines[first + 2]] + lines[first + 2:])
    cases["truncated"] = data[: len(data) // 2]
    trailer = json.loads(lines[-1].split(b" ", 1)[1] if fmt == "csv" else lines[-1])
    trailer["manifest"]["count"] += 1
    forged = (b"#manifest " if fmt == "csv" else b"") + json.dumps(trailer).encode()
    cases["bad signature"] = _join(lines[:-1] + [forged])
    expected = {"modified": "was modified", "missing": "missing", "reordered": "out of order",
                "added": "", "truncated": "truncated", "bad signature": "bad signature"}
    for name, blob in cases.items():
        result = verify_export(blob, pem)
        assert not result.ok, name
        assert expected[name] in result.problem, (name, result.problem)


def test_a_filtered_export_verifies(app, auditor):
    data = auditor.get("/audit/export?format=jsonl&action=auth.signin&outcome=success").get_data()
    result = verify_export(data, _pem(app))
    assert result.ok, result.problem
    assert result.count >= 4


def test_only_auditors_export(app, factory):
    c = app.test_client()
    sign_in(c, factory.user("admin"))
    assert c.get("/audit/export?format=csv").status_code == 403


def test_export_memory_is_flat_it_streams(app, auditor):
    resp = auditor.get("/audit/export?format=jsonl")
    assert resp.is_streamed


def _rewrite_history(app):
    """The attacker: change an early event and recompute every hash after it."""
    from portal import db
    from portal.audit.models import AuditEvent
    from portal.audit.trail import GENESIS, compute_hash, hashed_values

    with app.app_context():
        s = db.session()
        if IS_PG:
            s.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        prev = GENESIS
        for e in s.execute(sa.select(AuditEvent).order_by(AuditEvent.seq)).scalars():
            if e.seq == 2:
                e.reason = "rewritten"
            e.prev_hash = prev
            e.hash = compute_hash(prev, hashed_values(e))
            prev = e.hash
        s.flush()
        if IS_PG:
            s.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        s.commit()


def test_checkpoint_catches_a_rewrite_with_recomputed_hashes(app, auditor, tmp_path):
    from portal import db
    from portal.audit import checkpoints
    from portal.audit.verify import verify_chain

    page = auditor.get("/audit/checkpoints")
    assert page.status_code == 200
    with app.app_context():
        cp = checkpoints.make(db.session(), checkpoints.signing_key(str(app.config["SETTINGS"].audit_key_path)), "test")
        db.session().commit()
        cp_id = cp.id
    doc = json.loads(auditor.get(f"/audit/checkpoints/{cp_id}.json").get_data())
    pem = auditor.get("/audit/public-key.pem").get_data()
    with app.app_context():
        with db.engine().connect() as conn:
            assert checkpoints.check(conn, doc, pem)[0]
    _rewrite_history(app)
    with app.app_context():
        with db.engine().connect() as conn:
            assert verify_chain(conn).ok  # the chain alone cannot tell
            ok, message = checkpoints.check(conn, doc, pem)
    assert not ok and "rewritten" in message
    forged = dict(doc, payload=dict(doc["payload"], hash="0" * 64))
    with app.app_context():
        with db.engine().connect() as conn:
            ok, message = checkpoints.check(conn, forged, pem)
    assert not ok and "signature" in message


def test_verifier_cli_exit_codes(app, auditor, tmp_path):
    from crypto.audit_verify import main

    data = auditor.get("/audit/export?format=csv").get_data()
    export, key = tmp_path / "e.csv", tmp_path / "k.pem"
    export.write_bytes(data)
    key.write_bytes(_pem(app))
    assert main([str(export), str(key)]) == 0
    export.write_bytes(data.replace(b"auth.signin", b"auth.signout", 1))
    assert main([str(export), str(key)]) == 1


# ---------------------------------------------------------------- spreadsheet formulas (issue 13 item 3)

HOSTILE_CODE = '=HYPERLINK("http://evil.example","x")'
HOSTILE_EMAIL = "=1+2@demo.example"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _record_hostile(app):
    """What an admin's technology code and an invited account's e-mail leave in the trail, written
    straight to it: whatever the forms accept today, the export must hold any value safely."""
    from portal import db
    from portal.audit.trail import Actor, record

    with app.app_context():
        s = db.session()
        org = s.execute(sa.text("SELECT min(id) FROM organisations")).scalar()
        record(s, "catalogue.add", actor=Actor(None, "admin@demo.example", "admin", None),
               target_type="technology", target_id=HOSTILE_CODE)
        actor = Actor(None, HOSTILE_EMAIL, "filer", org)
        record(s, "auth.signin", actor=actor, reason="+SUM(A1:A9)")
        record(s, "report.view", actor=actor, target_type="report", target_id="-2+3", case_ref="@SUM(1)")
        record(s, "report.view", actor=actor, reason="'already quoted", target_id="\\N")
        s.commit()


def _csv_cells(data: bytes) -> list[list[str]]:
    import csv
    import io

    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_csv_export_neutralises_formulas_and_still_verifies(app, auditor):
    _record_hostile(app)
    data = auditor.get("/audit/export?format=csv").get_data()
    rows = _csv_cells(data)
    # Not one cell of the file, the manifest line included, begins a formula.
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), (cell, row)
    cells = {cell for row in rows for cell in row}
    assert "'" + HOSTILE_CODE in cells and "'" + HOSTILE_EMAIL in cells
    assert {"'+SUM(A1:A9)", "'-2+3", "'@SUM(1)", "''already quoted", "'\\N"} <= cells
    result = verify_export(data, _pem(app))
    assert result.ok, result.problem
    # The verifier hashes the values as recorded: the quote is not part of them.
    [ev] = [e for e in audit_events(app, "catalogue.add") if e.target_id == HOSTILE_CODE]
    assert ev.actor_email == "admin@demo.example"
    assert [e.target_id for e in audit_events(app, "report.view") if e.reason == "'already quoted"] == ["\\N"]


def test_tampering_with_a_neutralised_csv_is_still_caught(app, auditor):
    _record_hostile(app)
    data = auditor.get("/audit/export?format=csv").get_data()
    pem = _pem(app)
    quoted = '"\'' + HOSTILE_CODE.replace('"', '""') + '"'
    assert quoted.encode() in data
    # The quote taken off again (the value the hash covers is unchanged, the signed bytes are not).
    unquoted = data.replace(quoted.encode(), ('"' + HOSTILE_CODE.replace('"', '""') + '"').encode(), 1)
    result = verify_export(unquoted, pem)
    assert not result.ok and "differs from what was signed" in result.problem
    # The value changed behind its quote.
    changed = data.replace(b"'=1+2@demo.example", b"'=1+3@demo.example", 1)
    result = verify_export(changed, pem)
    assert not result.ok and "was modified" in result.problem
    # The manifest's promise withdrawn: the quoted cells no longer hash, and the signature fails.
    lines = _lines(data)
    forged = lines[-1].replace(b'"neutralised":true', b'"neutralised":false')
    assert forged != lines[-1]
    result = verify_export(_join(lines[:-1] + [forged]), pem)
    assert not result.ok and "bad signature" in result.problem


def test_jsonl_export_keeps_values_as_they_are(app, auditor):
    _record_hostile(app)
    data = auditor.get("/audit/export?format=jsonl").get_data()
    events = [json.loads(line) for line in _lines(data)[:-1]]
    assert HOSTILE_CODE in {e["target_id"] for e in events}
    assert HOSTILE_EMAIL in {e["actor_email"] for e in events}
    manifest = json.loads(_lines(data)[-1])["manifest"]
    assert "neutralised" not in manifest
    assert verify_export(data, _pem(app)).ok


def test_manifest_line_starts_no_cell_with_a_filter_value(app, auditor):
    """The manifest line is JSON, but a spreadsheet splits it at commas like any other line."""
    from portal import db
    from portal.audit import checkpoints
    from portal.audit.export import Filter, stream

    _record_hostile(app)
    with app.app_context():
        key = checkpoints.signing_key(str(app.config["SETTINGS"].audit_key_path))
        f = Filter(actor=HOSTILE_EMAIL, case_ref='x,=HYPERLINK("http://evil.example")')
        data = b"".join(stream(db.engine(), f, "csv", key=key, exporter="x,=1+2@demo.example", checkpoint=None))
    last = _lines(data)[-1]
    assert b"," + b"=" not in last
    for cell in _csv_cells(last + b"\n")[0]:
        assert not cell.startswith(FORMULA_STARTS), cell
    manifest = json.loads(last.split(b" ", 1)[1])["manifest"]
    assert manifest["filter"]["case_ref"] == 'x,=HYPERLINK("http://evil.example")'
    assert manifest["exporter"] == "x,=1+2@demo.example"
    result = verify_export(data, _pem(app))
    assert result.ok and result.count == 0, result.problem
    # Small batches: quoting is decided batch by batch, and every batch holds to the rule.
    with app.app_context():
        data = b"".join(stream(db.engine(), Filter(), "csv", key=key, exporter="cli", checkpoint=None, batch=2))
    for row in _csv_cells(data):
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), cell
    result = verify_export(data, _pem(app))
    assert result.ok and result.count >= 9, result.problem


@pytest.mark.parametrize("value", ["=1", "+1", "-1", "@a", "\tx", "\rx", "'x", "''", "\\N", "", "x", "1-2",
                                   "a=b", "\\Nx", "'"])
def test_csv_cell_round_trips(value):
    from crypto.audit_verify import FORMULA_STARTS as STARTS, csv_cell, csv_value

    cell = csv_cell(value)
    assert csv_value(cell) == value
    assert cell[:1] not in STARTS
    assert cell != "\\N"
