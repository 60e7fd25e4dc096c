from tests.conftest import audit_events, sign_in


def test_company_user_signs_in_and_out(app, client, factory):
    user = factory.user("filer")
    home = sign_in(client, user)
    assert home.status_code == 200
    assert user.name in home.get_data(as_text=True)
    assert [e.outcome for e in audit_events(app, "auth.signin")] == ["success"]
