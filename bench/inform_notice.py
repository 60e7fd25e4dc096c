"""Time to generate an inform notice, and that the stored notice is served byte-identical.

Run: .venv/bin/python bench/inform_notice.py
Prints the first render (font parsing included) and the median of 20 warm renders, then
issues an inform through the real services in a temporary SQLite portal and downloads
the notice twice through the app, comparing the bytes and the recorded SHA-256.
"""
from __future__ import annotations

import hashlib
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sample():
    from portal.informs.notice import NoticeData

    return NoticeData(
        number="INF-2026-0001", issued_on=date(2026, 11, 22), addressee_name="株式会社サンプル電子",
        corporate_number="1180301018771", addressee_address="愛知県名古屋市中区三の丸3-1-2",
        report_reference="TTR-2026-000012", technology_ja="積層セラミックコンデンサ (MLCC)",
        technology_en="Multilayer ceramic capacitors", destination="ベトナム",
        legal_basis="外国為替及び外国貿易法第55条の8、外国為替令第18条の8第1項",
        reasons="管理措置が不十分であり、技術流出の懸念が払拭されないため。\n" * 8,
        conditions="許可申請において、相手方との契約書案を添付すること。", issuer="経済産業大臣")


def main() -> None:
    from portal.informs.notice import render_notice

    data = sample()
    t0 = time.perf_counter()
    first = render_notice(data, "ja")
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(20):
        t0 = time.perf_counter()
        again = render_notice(data, "ja")
        warm.append(time.perf_counter() - t0)
    identical_render = again == first
    downloads_identical, sha_matches = through_the_app()
    result = {"cold_s": round(cold, 3), "warm_median_s": round(statistics.median(warm), 3),
              "warm_max_s": round(max(warm), 3), "pdf_bytes": len(first), "renders_identical": identical_render,
              "downloads_identical": downloads_identical, "download_sha256_matches_record": sha_matches}
    print(f"notice render: first {cold:.3f} s, warm median {statistics.median(warm):.3f} s "
          f"(max {max(warm):.3f} s), {len(first):,} bytes; two renders identical: {identical_render}")
    print(f"two downloads of an issued notice identical: {downloads_identical}; SHA-256 matches the record: {sha_matches}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with open(out / "inform_notice.json", "a") as f:
        f.write(json.dumps(result) + "\n")


def through_the_app() -> tuple[bool, bool]:
    """Issue an inform with the real services in a throwaway portal and download it twice."""
    from tests.conftest import Factory, csrf_of, make_settings, sign_in
    from tests.reports_helpers import fill_all, new_report, submit

    from portal import create_app
    from portal.encryption import sealed
    from portal.encryption.opener import keyring_for
    from portal.encryption.instance import ensure_instance
    from portal.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/portal.db"
        upgrade(url)
        settings = make_settings(Path(tmp), url)
        ensure_instance(settings)
        app = create_app(settings)
        with app.extensions["db_engine"].begin() as conn:
            sealed.ensure_field_key(conn, keyring_for(settings.keyring_path))
        f = Factory(app)
        org = f.org("株式会社ベンチ", facility=True)
        filer = f.user("filer", org=org)
        reviewer, approver = f.user("reviewer"), f.user("approver")
        fc, rc, ac = app.test_client(), app.test_client(), app.test_client()
        for c, u in ((fc, filer), (rc, reviewer), (ac, approver)):
            sign_in(c, u)
        rid = new_report(fc)
        fill_all(fc, rid)
        submit(fc, rid)

        def post(c, url, data=None):
            token = csrf_of(c.get(f"/reports/{rid}").get_data(as_text=True))
            return c.post(url, data={**(data or {}), "csrf_token": token})

        post(rc, f"/review/cases/{rid}/take")
        post(rc, f"/reports/{rid}/informs", {"legal_basis": "外国為替及び外国貿易法第55条の8", "reasons": "理由",
                                               "internal_rationale": "内部", "rationale_classification": "restricted"})
        from portal import db
        from portal.informs.models import Inform

        with app.app_context():
            inform_id = db.session().query(Inform.id).scalar()
        post(rc, f"/informs/{inform_id}/send")
        from tests.inform_helpers import approve

        assert approve(ac, inform_id).status_code == 302  # from the confirmation page, as an approver does
        a = fc.get(f"/informs/{inform_id}/notice.pdf").data
        b = ac.get(f"/informs/{inform_id}/notice.pdf").data
        with app.app_context():
            recorded = db.session().get(Inform, inform_id).notice_sha256
        return a == b and a[:5] == b"%PDF-", hashlib.sha256(a).hexdigest() == recorded


if __name__ == "__main__":
    main()
