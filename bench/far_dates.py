"""Issue 13, "Measure and report": the CPU time of the case page and the queue page with the
most distant transfer date the form accepts, and with the extremes a database can hold.

    .venv/bin/python bench/far_dates.py [--database-url postgresql://...] [--repeat 50]

SQLite in a temporary directory by default. One case is filed through the pages, then its
planned transfer date is set to each value in turn; each page is requested ``--repeat`` times
by an approver and the mean process CPU time per request is printed (and appended to
results/far_dates.json).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from _common import write_result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url")
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()

    from portal import create_app
    from portal.encryption import sealed
    from portal.encryption.opener import keyring_for
    from portal.calendar import window
    from portal.core.timeutil import today_jst
    from portal.encryption.instance import ensure_instance
    from portal.migrate import upgrade
    from tests.conftest import Factory, make_settings, sign_in
    from tests.reports_helpers import fill_all, new_report, submit

    tmp = Path(tempfile.mkdtemp(prefix="far-dates-"))
    url = args.database_url or f"sqlite:///{tmp / 'portal.db'}"
    if args.database_url:
        from _common import recreate_database

        recreate_database(url)
    else:
        upgrade(url)
    settings = make_settings(tmp / "instance", url)
    ensure_instance(settings)
    app = create_app(settings)
    with app.extensions["db_engine"].begin() as conn:
        sealed.ensure_field_key(conn, keyring_for(settings.keyring_path))
    f = Factory(app)
    org = f.org(facility=True)
    filer = app.test_client()
    sign_in(filer, f.user("filer", org=org, compartments=("T01",)))
    rid = new_report(filer)
    fill_all(filer, rid)
    submit(filer, rid)
    approver = app.test_client()
    sign_in(approver, f.user("approver", compartments=("T01",)))

    furthest = window(today_jst(), 5, 10)[1]
    results = {}
    for label, value in (("furthest accepted", furthest), ("9999-12-31", date(9999, 12, 31)),
                         ("0001-01-02", date(1, 1, 2)), ("5000-06-30", date(5000, 6, 30))):
        with app.extensions["db_engine"].begin() as conn:
            conn.execute(sa.text("UPDATE reports SET planned_transfer_date = :d WHERE id = :r"), {"d": value, "r": rid})
        for page in (f"/reports/{rid}", "/review/queue?sort=transfer"):
            assert approver.get(page).status_code == 200
            started = time.process_time()
            for _ in range(args.repeat):
                approver.get(page)
            ms = (time.process_time() - started) / args.repeat * 1000
            results[f"{label} {page.split('?')[0]}"] = round(ms, 2)
            print(f"{label:18} {value.isoformat():10} {page:28} {ms:7.2f} ms CPU per request")
    write_result("far_dates", {"database": url.split(":", 1)[0], "repeat": args.repeat, "ms_cpu": results})


if __name__ == "__main__":
    main()
