"""schemathesis against the live API (issue 19): requests generated from the served OpenAPI
document (valid and invalid ones), sent to a real gunicorn server with a filer's token, every
answer checked against the document (status code, content type, headers, body schema) and
none may be a server error. `make test` runs a bounded profile on each database
(PORTAL_API_FUZZ_EXAMPLES, default 5 per operation); `make api-fuzz` a longer one."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.api_helpers import complete_fields
from tests.api_live import live_api
from tests.conftest import TEST_DB

EXAMPLES = int(os.environ.get("PORTAL_API_FUZZ_EXAMPLES", "5"))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance")


def _seed(live) -> None:
    """Objects for the generated ids to find: drafts, a submitted report, a file."""
    h = {"Authorization": f"Bearer {live.token}"}
    with httpx.Client(base_url=live.base_url, headers=h, timeout=60) as c:
        ids = [c.post("/api/v1/reports", json=complete_fields()).json()["id"] for _ in range(3)]
        up = c.post(f"/api/v1/reports/{ids[0]}/attachments",
                    files={"file": ("plan.pdf", io.BytesIO(b"%PDF-1.4\n" + b"x" * 500), "application/pdf")})
        assert up.status_code == 201, up.text
        assert c.post(f"/api/v1/reports/{ids[1]}/submit", json={"attest": True}).status_code == 200


def run_schemathesis(live, examples: int, report_dir: Path) -> dict:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{live.base_url}/api/v1/openapi.json",
         "-H", f"Authorization: Bearer {live.token}", "--checks", CHECKS, "--max-examples", str(examples),
         "--seed", "19", "--workers", "1", "--no-color", "--request-timeout", "60",
         "--report", "junit", "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=1800)
    text = out.stdout + out.stderr
    m = re.search(r"(\d+) generated, (.*)", text)
    return {"exit": out.returncode, "generated": int(m.group(1)) if m else 0, "outcome": m.group(2).strip() if m else "",
            "output": text}


def test_schemathesis_finds_nothing(tmp_path_factory, tmp_path):
    with live_api(tmp_path_factory, tmp_path, label="fuzz") as live:
        _seed(live)
        result = run_schemathesis(live, EXAMPLES, tmp_path / "report")
        server_log = live.server.log_text()
    summary = {"database": "postgresql" if TEST_DB.startswith("postgresql") else "sqlite",
               "examples_per_operation": EXAMPLES, "generated": result["generated"], "outcome": result["outcome"],
               "exit": result["exit"]}
    print("\napi fuzz: " + json.dumps(summary))
    out_dir = os.environ.get("PORTAL_API_FUZZ_OUT")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / f"api-fuzz-{summary['database']}.txt").write_text(result["output"])
    assert result["generated"] > 10 * EXAMPLES, result["output"][-4000:]
    assert result["exit"] == 0, result["output"][-8000:]
    assert "unhandled error" not in server_log, server_log[-4000:]
