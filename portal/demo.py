"""Demo data for a new user: a few organisations and one account per role.

Refuses to run against a database that holds anything but demo data, so it can never
mix invented accounts into a real installation.
"""
from __future__ import annotations

import secrets
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.access import services as clearances
from portal.admin.services import create_user
from portal.auth import totp
from portal.auth.models import User
from portal.core.timeutil import today_jst
from portal.db import utcnow
from portal.orgs.services import create_organisation

DEMO_DOMAIN = "demo.example"


class DemoRefused(RuntimeError):
    pass


ORGS = [
    # name, 法人番号, address, government
    ("経済産業省 貿易経済安全保障局", "4000012090001", "東京都千代田区霞が関1-3-1", True),
    ("株式会社サンプル電子", "1180301018771", "愛知県名古屋市中区三の丸3-1-2", False),
    ("東和マテリアル株式会社", "7000012050002", "東京都千代田区丸の内1-1-1", False),
]

# role, e-mail local part, name, organisation index, level, compartments, totp
ACCOUNTS = [
    ("filer", "filer", "山田 太郎", 1, "confidential", ["T01", "T02", "T08"], False),
    ("org_admin", "orgadmin", "佐藤 花子", 1, "confidential", ["T01", "T02", "T08"], False),
    ("filer", "filer2", "鈴木 一郎", 2, "restricted", ["T14"], False),
    ("reviewer", "reviewer", "高橋 健", 0, "confidential", ["T01", "T02", "T08", "T14"], True),
    ("approver", "approver", "田中 美咲", 0, "csi", [f"T{n:02d}" for n in range(1, 20)], True),
    ("auditor", "auditor", "伊藤 誠", 0, "confidential", [], True),
    ("security_officer", "security", "渡辺 直子", 0, "csi", [], True),
    ("admin", "admin", "中村 大輔", 0, "restricted", [], True),
]


def _is_demo_only(session: Session) -> bool:
    non_demo = session.execute(
        select(func.count()).select_from(User).where(~User.email.endswith("@" + DEMO_DOMAIN))
    ).scalar_one()
    return non_demo == 0


def seed(session: Session) -> list[dict]:
    if not _is_demo_only(session):
        raise DemoRefused("this database holds real accounts; `portal demo` only seeds an empty or demo database")
    if session.execute(select(User.id).limit(1)).first():
        return []
    settings = current_app.config["SETTINGS"]
    orgs = []
    for name, number, address, gov in ORGS:
        org = create_organisation(session, name=name, number=number, address=address, is_government=gov)
        orgs.append(org)
    today = today_jst()
    orgs[1].facility_clearance_from = today - timedelta(days=365)
    orgs[1].facility_clearance_until = today + timedelta(days=4 * 365)
    out = []
    for role, local, name, org_i, level, comps, with_totp in ACCOUNTS:
        password = secrets.token_urlsafe(12)
        user = create_user(session, settings, email=f"{local}@{DEMO_DOMAIN}", name=name, role=role,
                           org=orgs[org_i], password=password, actor=None)
        clearances.grant(session, target=user, level=level, compartments=comps, expires_on=None,
                         reason="デモ用の付与 / demo grant", actor=None, today=today)
        secret = None
        if with_totp:
            secret = totp.new_secret()
            user.totp_secret = secret
            user.totp_enabled_at = utcnow()
        out.append({"role": role, "email": user.email, "password": password, "totp": secret})
    session.flush()
    _seed_reports(session, today)
    _write_accounts_file(settings, out)
    return out


DEMO_REPORTS = [
    # e-mail local part of the filer, technology, counterparty, country, days to transfer, path of transitions
    ("filer", "T01", "Hanoi Passive Components Co., Ltd.", "VN", 120, []),
    ("filer", "T01", "Shenzhen Ceramic Devices Ltd.", "CN", 90, ["submit"]),
    ("filer", "T02", "Penang RF Filters Sdn. Bhd.", "MY", 75, ["submit", "take", "ask"]),
    ("filer", "T01", "Cebu Multilayer Devices Inc.", "PH", 65, ["submit", "take", "ask", "answer"]),
    ("filer", "T08", "Hsinchu Resist Materials Corp.", "TW", 60, ["submit", "take", "return"]),
    ("filer", "T08", "Bangalore Lithography Pvt. Ltd.", "IN", 45, ["submit", "take", "close"]),
    ("filer", "T02", "Bangkok Electronics Co., Ltd.", "TH", 100, ["submit", "withdraw"]),
    ("filer2", "T14", "Suzhou Battery Materials Co., Ltd.", "CN", 150, ["submit"]),
]

MESSAGES = {
    "ask": "技術の提供範囲について、ブラックボックス化の具体的な方法を説明してください。",
    "answer": "焼成プロファイルは当社従業員のみが設定し、相手方には結果データのみを共有します。",
}

COMMENTS = {
    "return": "相手先の住所と出資比率を補正してください。",
    "close": "管理措置を確認しました。インフォームの必要はありません。",
    "withdraw": "契約交渉が中止となったため取り下げます。",
}


def _attach_demo_file(session: Session, report, filer, subject, today: date) -> None:
    from portal.attachments import services as attachments
    from portal.encryption.opener import keyring_for

    settings = current_app.config["SETTINGS"]
    store = attachments.store_for(settings, lambda: session)
    sink = attachments.UploadSink(store, settings.max_upload_bytes)
    text = ("技術移転に関する管理措置の概要（デモ）\n"
            f"相手方: {report.title}\n1. 契約条項\n2. ブラックボックス化\n3. アクセス管理\n").encode()
    sink.write(text)
    sink.seek(0)
    try:
        attachments.store_upload(session, keyring_for(settings.keyring_path), sink, report=report,
                                 filename="管理措置の概要.txt", classification="restricted", subject=subject,
                                 actor=filer, today=today, ip=None)
    except Exception:
        sink.abort()
        raise


def _seed_reports(session: Session, today: date) -> None:

    from portal.access.subject import subject_for
    from portal.reports import services
    from portal.reports.content import STEPS

    users = {u.email.split("@")[0]: u for u in session.execute(select(User)).scalars()}
    reviewer = users["reviewer"]
    for local, tech, name, country, days, path in DEMO_REPORTS:
        filer = users[local]
        subject = subject_for(session, filer, today)
        r = services.create_draft(session, subject=subject, actor=filer, today=today, ip=None)
        data = {
            "contact_name": filer.name, "contact_email": filer.email, "contact_phone": "03-1234-5678",
            "technology": tech, "description": "デモ用の技術説明：製造条件と材料配合に関するノウハウ。",
            "transfer_form": "overseas_site" if "Co." in name else "licensing", "classification": "restricted",
            "counterparty_name": name, "counterparty_country": country, "counterparty_address": "",
            "counterparty_relation": "subsidiary", "shareholding": 60.0, "destination_country": country,
            "contract_date": (today + timedelta(days=days - 30)).isoformat(),
            "transfer_date": (today + timedelta(days=days)).isoformat(),
            "contract_value": 150_000_000, "currency": "JPY", "group_a_confirmed": False,
            "measures": ["contract_clauses", "black_boxing", "access_control"],
        }
        for step in STEPS:
            from portal.reports.content import STEP_FIELDS

            services.save_step(session, r, step, {k: data[k] for k in STEP_FIELDS[step]}, subject=subject,
                               actor=filer, today=today, ip=None)
        _attach_demo_file(session, r, filer, subject, today)
        for name_ in path:
            actor = reviewer if name_ in ("take", "return", "close", "ask") else filer
            actor_subject = subject_for(session, actor, today)
            if name_ in ("ask", "answer"):
                from portal.dialogue import services as dialogue
                from portal.calendar import add_business_days

                dialogue.post(session, r, channel="external", body=MESSAGES[name_], classification="restricted",
                              reply_to=None, due=add_business_days(today, 10) if name_ == "ask" else None,
                              subject=actor_subject, actor=actor, today=today, ip=None,
                              base_url=current_app.config["SETTINGS"].base_url)
                continue
            services.transition(session, r, name_, subject=actor_subject, actor=actor,
                                today=today, ip=None, comment=COMMENTS.get(name_))


def _write_accounts_file(settings, accounts: list[dict]) -> None:
    """Keep the printed credentials where `make run` can show them again (0600, instance/)."""
    import os

    path = settings.instance_path / "demo-accounts.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(format_accounts(accounts))


def format_accounts(accounts: list[dict]) -> str:
    lines = ["Demo accounts (role, e-mail, password, TOTP secret where two-factor is on):"]
    for a in accounts:
        lines.append(f"  {a['role']:<17} {a['email']:<28} {a['password']:<18} {a.get('totp') or '-'}")
    return "\n".join(lines) + "\n"
