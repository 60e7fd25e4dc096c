"""Two app servers on one PostgreSQL database and one instance folder (keyring, blobs), as
DESIGN §9 deploys them behind a proxy: a session made on one is valid on the other,
submissions through both get unique, gap-free references, a file uploaded through one is
downloaded through the other, the daily job started on both at once sends each notice once,
and the audit trail written by both is one verifiable chain."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.conftest import Factory, csrf_of, fresh_database_url, make_settings, sign_in
from tests.live_server import PORTAL, Server, portal_cli, server_env
from tests.reports_helpers import fill_all, new_report, submit

pytestmark = pytest.mark.postgres_only

REPORTS = 6
AWAITING, OVERDUE = 3, 2


def upload(browser, rid: int, data: bytes, name: str) -> int:
    page = browser.get(f"/reports/{rid}/attachments").get_data(as_text=True)
    return browser.post(f"/reports/{rid}/attachments", content_type="multipart/form-data",
                        data={"csrf_token": csrf_of(page), "classification": "restricted",
                              "file": (data, name)}).status_code


@pytest.fixture
def deployment(tmp_path_factory, tmp_path):
    from portal import create_app

    url = fresh_database_url(tmp_path_factory, "twoservers")
    instance = tmp_path / "instance"
    env = server_env(url, instance)
    portal_cli(env, "init")
    app = create_app(make_settings(instance, url))
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda name: Server(env, tmp_path, name=name), ["a", "b"])
    try:
        yield {"app": app, "env": env, "a": a, "b": b}
    finally:
        a.stop()
        b.stop()
        app.extensions["db_engine"].dispose()


def test_two_servers_share_everything(deployment):
    from portal import db
    from portal.attachments.models import Attachment
    from portal.mail.models import OutboxMessage
    from portal.notifications.models import Notification
    from portal.reports.models import Report

    app, a, b = deployment["app"], deployment["a"], deployment["b"]
    factory = Factory(app)
    org = factory.org("株式会社二台", facility=True)
    filers = [factory.user("filer", org=org, compartments=("T01",)) for _ in range(2)]
    reviewer = factory.user("reviewer", compartments=("T01",), level="csi")

    # Sessions: signed in on A, the same cookie is a signed-in session on B.
    browsers = []
    for user in filers:
        on_a = a.browser()
        sign_in(on_a, user)
        on_b = on_a.on(b.port)
        page = on_b.get("/reports")
        assert page.status_code == 200 and user.name in page.get_data(as_text=True)
        browsers.append((on_a, on_b))

    # Submissions and uploads through both, at the same time.
    files: dict[int, bytes] = {}
    lock = threading.Lock()

    def file_one(i: int) -> int:
        on_a, on_b = browsers[i % 2]
        mine, other = (on_a, on_b) if i % 3 else (on_b, on_a)
        rid = new_report(mine)
        fill_all(other, rid)
        data = b"%PDF-1.7\n" + os.urandom(300_000 + i)
        assert upload(mine, rid, data, f"file-{i}.pdf") == 302
        with lock:
            files[rid] = data
        assert submit(other, rid).status_code == 302
        return rid

    with ThreadPoolExecutor(REPORTS) as pool:
        rids = list(pool.map(file_one, range(REPORTS)))

    with app.app_context():
        s = db.session()
        refs = s.execute(sa.select(Report.reference).where(Report.id.in_(rids))).scalars().all()
        attachments = {r.report_id: (r.id, r.sha256) for r in s.execute(sa.select(Attachment)).scalars()}
        s.rollback()
    numbers = sorted(int(re.fullmatch(r"TTR-\d{4}-(\d{6})", ref).group(1)) for ref in refs)
    assert numbers == list(range(1, REPORTS + 1)), refs

    # Each file through the server that did not receive it.
    for rid, data in files.items():
        att_id, sha = attachments[rid]
        assert sha == hashlib.sha256(data).hexdigest()
        for browser in browsers[0]:
            got = browser.get(f"/attachments/{att_id}")
            assert got.status_code == 200 and got.data == data

    # The daily job, started on both servers at once.
    today = datetime.now(timezone.utc).date()
    long_ago = datetime.now(timezone.utc) - timedelta(days=120)
    with app.app_context():
        s = db.session()
        s.execute(sa.update(Report).where(Report.id.in_(rids[:AWAITING])).values(
            status="awaiting_response", awaiting_since=today - timedelta(days=3), response_due=today + timedelta(days=1)))
        s.execute(sa.update(Report).where(Report.id.in_(rids[AWAITING:AWAITING + OVERDUE])).values(
            status="under_review", submitted_at=long_ago, assignee_id=reviewer.id))
        s.commit()
        mails_before = s.execute(sa.select(sa.func.count()).select_from(OutboxMessage)).scalar_one()
        s.rollback()
    env = deployment["env"]
    runs = [subprocess.Popen([str(PORTAL), "jobs", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs

    with app.app_context():
        s = db.session()
        sent = Counter(s.execute(sa.select(Notification.user_id, Notification.report_id, Notification.kind)
                                 .where(Notification.kind.in_(["reminder", "overdue"]))).all())
        mails = s.execute(sa.select(sa.func.count()).select_from(OutboxMessage)).scalar_one() - mails_before
        s.rollback()
    expected = Counter({**{(f.id, rid, "reminder"): 1 for f in filers for rid in rids[:AWAITING]},
                        **{(reviewer.id, rid, "overdue"): 1 for rid in rids[AWAITING:AWAITING + OVERDUE]}})
    assert sent == expected, outputs
    assert mails == sum(expected.values())

    # Nothing lost: both servers wrote one audit chain.
    verify = subprocess.run([str(PORTAL), "audit", "verify"], env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and verify.stdout.startswith("ok"), verify.stdout + verify.stderr
    for server in (a, b):
        assert "Traceback" not in server.log_text(), server.log_text()[-3000:]
