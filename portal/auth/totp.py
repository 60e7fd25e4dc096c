"""TOTP (RFC 6238) from ``cryptography`` with a replay guard and one-time recovery codes."""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import secrets
import time

import qrcode
import qrcode.image.svg
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

STEP = 30
DIGITS = 6
# Accept the previous and the next step for clock drift.
DRIFT_STEPS = 1


def new_secret() -> str:
    return base64.b32encode(os.urandom(20)).decode("ascii")


def _totp(secret_b32: str) -> TOTP:
    return TOTP(base64.b32decode(secret_b32), DIGITS, SHA1(), STEP, enforce_key_length=False)


def code_at(secret_b32: str, t: float) -> str:
    return _totp(secret_b32).generate(int(t)).decode("ascii")


def match_counter(secret_b32: str, code: str, *, last_counter: int | None, now: float | None = None) -> int | None:
    """The time step the code belongs to, or None if it is wrong, expired or a replay
    (its step is not later than the last accepted one)."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = time.time() if now is None else now
    totp = _totp(secret_b32)
    current = int(now) // STEP
    for counter in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        try:
            totp.verify(code.encode("ascii"), counter * STEP)
        except InvalidToken:
            continue
        if last_counter is not None and counter <= last_counter:
            return None
        return counter
    return None


def provisioning_uri(secret_b32: str, account: str, issuer: str) -> str:
    return _totp(secret_b32).get_provisioning_uri(account, issuer)


def qr_svg(uri: str) -> str:
    img = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buf = io.BytesIO()
    img.save(buf)
    svg = buf.getvalue().decode("utf-8")
    # Drop the XML declaration: the SVG is embedded in the page, not served alone.
    return svg[svg.index("<svg"):]


RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_recovery_codes(n: int = 10) -> list[str]:
    def one() -> str:
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(12))
        return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"

    return [one() for _ in range(n)]


def hash_recovery_code(code: str, pepper: str) -> str:
    # Codes carry ~59 bits of entropy, so a keyed hash suffices (no slow KDF needed).
    normal = code.strip().lower().replace("-", "").replace(" ", "")
    return hmac.new(pepper.encode(), normal.encode(), hashlib.sha256).hexdigest()
