"""The OpenID Connect relying party for GビズID, on Authlib's Flask client.

Authorization code flow with PKCE (S256), ``state`` and ``nonce`` kept in the portal's
server-side session, the ID token's signature checked against the provider's JWKS (fetched
again once when a token names a key id it does not hold: the provider rotated its keys), its
issuer, audience, nonce and times checked with ``PORTAL_OIDC_LEEWAY_SECONDS`` of clock skew.
Only asymmetric signatures are accepted: never ``none``, never an HMAC keyed with the client
secret. Every way a sign-in can fail raises ``SignInFailed`` with a short reason for the audit
trail; nothing here touches the database.
"""
from __future__ import annotations

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, request
from joserfc import errors as jose

from portal.config import Settings

NAME = "gbiz"
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


class SignInFailed(Exception):
    """The provider's answer cannot be trusted or used; ``status`` is the page's HTTP status."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _client(app: Flask, settings: Settings):
    """The registered client, built once per configuration (tests change it between apps)."""
    key = (settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret, settings.oidc_scopes,
           settings.oidc_timeout_seconds)
    cached = app.extensions.get("gbiz_oidc")
    if cached is not None and cached[0] == key:
        return cached[1]
    oauth = OAuth(app)
    issuer = str(settings.oidc_issuer).rstrip("/")
    client = oauth.register(
        NAME, client_id=settings.oidc_client_id, client_secret=settings.oidc_client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_basic",
                       "default_timeout": settings.oidc_timeout_seconds})
    app.extensions["gbiz_oidc"] = (key, client)
    return client


def _metadata(client, settings: Settings) -> dict:
    """The provider's discovery document, checked once: it must be the configured issuer's
    (a mix-up defence), and it is allowed only asymmetric ID token algorithms."""
    try:
        metadata = client.load_server_metadata()
    except (requests.RequestException, ValueError):
        raise SignInFailed("provider_unavailable", 503) from None
    if not metadata.get("_checked"):
        if metadata.get("issuer") != settings.oidc_issuer:
            client.server_metadata = {}
            raise SignInFailed("wrong_issuer", 503)
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        metadata["id_token_signing_alg_values_supported"] = [a for a in offered if a in ALGORITHMS] or ["RS256"]
        metadata["_checked"] = True
    return metadata


def start(settings: Settings, redirect_uri: str):
    """The redirect to the provider's sign-in page (state, nonce and PKCE verifier saved in the session)."""
    client = _client(current_app, settings)
    _metadata(client, settings)
    try:
        return client.authorize_redirect(redirect_uri)
    except requests.RequestException:
        raise SignInFailed("provider_unavailable", 503) from None


def finish(settings: Settings) -> tuple[dict, str]:
    """The provider came back to the callback: the verified ID token's claims and the token itself."""
    client = _client(current_app, settings)
    metadata = _metadata(client, settings)
    error = request.args.get("error")
    if error:
        raise SignInFailed("cancelled" if error == "access_denied" else "provider_error")
    iss = request.args.get("iss")
    if iss is not None and iss != metadata["issuer"]:  # RFC 9207: an answer from another provider
        raise SignInFailed("wrong_issuer")
    try:
        # Authlib checks only the issuer unless told: the audience must name this client (an
        # ``azp`` naming it is not enough when ``aud`` does not).
        options = {"iss": {"essential": True, "value": metadata["issuer"]},
                   "aud": {"essential": True, "value": settings.oidc_client_id}}
        token = client.authorize_access_token(leeway=settings.oidc_leeway_seconds, claims_options=options)
    except MismatchingStateError:
        raise SignInFailed("state_mismatch") from None
    except OAuthError:
        # The provider refused the code: used before, expired, or not issued for this verifier.
        raise SignInFailed("code_refused") from None
    except jose.InvalidKeyIdError:
        raise SignInFailed("unknown_key") from None
    except jose.BadSignatureError:
        raise SignInFailed("bad_signature") from None
    except (jose.UnsupportedAlgorithmError, jose.MissingAlgorithmError):
        raise SignInFailed("bad_algorithm") from None
    except jose.ExpiredTokenError:
        raise SignInFailed("expired") from None
    except jose.ClaimError as e:
        raise SignInFailed({"aud": "wrong_audience", "nonce": "nonce_mismatch", "iss": "wrong_issuer",
                            "iat": "not_yet_valid", "nbf": "not_yet_valid"}
                           .get(e.claim, "invalid_claim")) from None
    except jose.JoseError:
        raise SignInFailed("invalid_token") from None
    except requests.RequestException:
        raise SignInFailed("provider_unavailable", 503) from None
    claims = token.get("userinfo")
    if not claims or not token.get("id_token"):
        raise SignInFailed("no_id_token")
    return dict(claims), token["id_token"]


def logout_url(settings: Settings, id_token: str | None, post_logout_redirect_uri: str) -> str | None:
    """Where to send the browser so the provider ends its session too (RP-initiated logout),
    or None: not configured, not offered, or the provider cannot be reached. Sign-out itself
    never depends on the provider."""
    if not (settings.oidc_enabled and settings.oidc_logout and id_token):
        return None
    client = _client(current_app, settings)
    try:
        metadata = _metadata(client, settings)
    except SignInFailed:
        return None
    if not metadata.get("end_session_endpoint"):
        return None
    return client.create_logout_url(post_logout_redirect_uri=post_logout_redirect_uri, id_token_hint=id_token,
                                    client_id=settings.oidc_client_id)["url"]
