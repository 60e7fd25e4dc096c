"""The README's example API client, exactly as written there, against a live server
(tests/live_server.py): it files a report with an attachment, and the report is submitted
with the file frozen into its first version."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.api_live import live_api

README = Path(__file__).resolve().parent.parent / "README.md"


def example_code() -> str:
    text = README.read_text()
    m = re.search(r"<!-- api-example:start -->\n```python\n(.*?)```\n<!-- api-example:end -->", text, re.DOTALL)
    assert m, "no API example in README.md"
    return m.group(1)


def test_the_readme_example_files_a_report_with_an_attachment(tmp_path_factory, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(example_code())
    pdf = tmp_path / "technical-plan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + b"plan " * 400 + b"\n%%EOF\n")
    with live_api(tmp_path_factory, tmp_path, label="example") as live:
        env = {**os.environ, "PORTAL_URL": live.base_url, "PORTAL_API_TOKEN": live.token,
               "PORTAL_ATTACHMENT": str(pdf)}
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        reference, status = out.stdout.split()
        assert re.fullmatch(r"TTR-\d{4}-\d{6}", reference) and status == "submitted", out.stdout
        with live.app.extensions["db_engine"].connect() as c:
            row = c.execute(sa.text("SELECT id, version_count FROM reports WHERE reference = :r"),
                            {"r": reference}).one()
            files = c.execute(sa.text("SELECT filename, version, size FROM attachments WHERE report_id = :i"),
                              {"i": row.id}).all()
            uses = c.execute(sa.text("SELECT count(*) FROM audit_events WHERE action = 'api.token.use' "
                                     "AND target_id = :t"), {"t": str(live.token_id)}).scalar_one()
    assert row.version_count == 1
    assert [(f.filename, f.version, f.size) for f in files] == [("technical-plan.pdf", 1, pdf.stat().st_size)]
    assert uses == 4  # create, upload, read, submit: each use of the token recorded
