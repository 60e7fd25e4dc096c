"""API tokens and requests for the API tests (issue 19)."""
from __future__ import annotations

import json
from datetime import date, timedelta

ALL_SCOPES = ["reports:read", "reports:write", "messages", "informs"]


def issue_token(app, user, *, scopes=None, days: int = 30, addresses: str = "", admin=None) -> tuple[int, str]:
    """A token for ``user``, issued by ``admin`` (default: the user, who must then be org_admin,
    or a new org_admin of the same organisation) through the service the admin page calls."""
    from portal import db
    from portal.auth import tokens
    from portal.auth.models import User

    with app.test_request_context():
        s = db.session()
        actor = s.get(User, admin.id if admin is not None else user.id)
        row, token = tokens.issue(s, org_id=user.organisation_id, user_id=user.id, name="ERP", days=days,
                                  scopes=list(scopes or ALL_SCOPES), addresses=addresses, actor=actor, ip=None)
        s.commit()
        return row.id, token


def auth(token: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def post_json(client, url: str, token: str, body, **headers):
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=auth(token, **headers))


def patch_json(client, url: str, token: str, body, **headers):
    return client.patch(url, data=json.dumps(body), content_type="application/json", headers=auth(token, **headers))


def complete_fields(today: date | None = None) -> dict:
    """Every field of a report, valid (the API's form of tests.reports_helpers.GOOD)."""
    today = today or date.today()
    return {
        "contact_name": "山田 太郎", "contact_email": "taro@example.jp", "contact_phone": "03-1234-5678",
        "technology": "T01", "description": "0201サイズMLCCの焼成条件とスラリー配合", "transfer_form": "licensing",
        "classification": "restricted",
        "counterparty_name": "ABC Electronics Co., Ltd.", "counterparty_country": "VN", "counterparty_address": "Hanoi",
        "counterparty_relation": "subsidiary", "shareholding": 51,
        "destination_country": "VN", "contract_date": (today + timedelta(days=40)).isoformat(),
        "transfer_date": (today + timedelta(days=90)).isoformat(), "contract_value": 120000000, "currency": "JPY",
        "measures": ["contract_clauses", "access_control"],
    }
