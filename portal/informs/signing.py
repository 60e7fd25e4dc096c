"""The ministry's signature on the official notice, and checking it (issue 16).

The signing key never enters the database: it is a PKCS#12 file named by
PORTAL_NOTICE_SIGNING_P12 (production), or the demo set `portal init` creates under instance/
(development, tests and PORTAL_DEMO=1 only; every demo file and subject says DEMO). The CA
certificate companies verify against is PORTAL_NOTICE_CA_CERT or the demo CA.

``sign`` is called at approval, before anything is stored: without usable signing material it
raises :class:`SigningUnavailable` and the approval is refused as a whole.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from crypto import notice_pki, pades
from portal.config import Settings
from portal.core.timeutil import JST


class SigningUnavailable(RuntimeError):
    """No signing key and certificate can be used; the message says which setting and why."""


@dataclass(frozen=True)
class Material:
    key: object
    cert: object
    chain: list
    demo: bool


_cache: dict[tuple, Material] = {}
_lock = threading.Lock()


def _p12_path(settings: Settings) -> tuple[Path, bool]:
    if settings.notice_signing_p12 is not None:
        return Path(settings.notice_signing_p12), False
    return Path(settings.instance_path) / notice_pki.DEMO_SIGNING_P12, True


def demo_allowed(settings: Settings) -> bool:
    return settings.env != "production" or settings.demo


def material(settings: Settings) -> Material:
    path, demo = _p12_path(settings)
    if demo and not demo_allowed(settings):
        raise SigningUnavailable("no notice signing key is configured: set PORTAL_NOTICE_SIGNING_P12 (and "
                                 "PORTAL_NOTICE_SIGNING_PASSWORD) to the ministry's PKCS#12 file")
    try:
        stat = path.stat()
    except OSError:
        raise SigningUnavailable(f"the notice signing key {path} is missing"
                                 + (" (run `portal init`)" if demo else "")) from None
    if stat.st_mode & 0o077:
        raise SigningUnavailable(f"the notice signing key {path} is readable by others: chmod 600 it")
    cache_key = (str(path), stat.st_mtime_ns, stat.st_size, settings.notice_signing_password)
    with _lock:
        found = _cache.get(cache_key)
        if found is not None:
            return found
        password = settings.notice_signing_password
        try:
            key, cert, chain = notice_pki.load_p12(path.read_bytes(), password.encode() if password else None)
        except (OSError, ValueError, TypeError) as exc:
            raise SigningUnavailable(f"the notice signing key {path} cannot be used: {exc}") from None
        found = Material(key, cert, chain, demo)
        _cache[cache_key] = found
        return found


def ca_path(settings: Settings) -> Path | None:
    if settings.notice_ca_cert is not None:
        return Path(settings.notice_ca_cert)
    if settings.notice_demo_signing and demo_allowed(settings):
        return Path(settings.instance_path) / notice_pki.DEMO_CA_CERT
    return None  # production without a configured CA: never offer the demo one


def ca_pem(settings: Settings) -> bytes | None:
    """The CA certificate (PEM) companies verify the notice against; None when there is none."""
    path = ca_path(settings)
    try:
        return path.read_bytes() if path is not None else None
    except OSError:
        return None


def crls(settings: Settings) -> list[bytes]:
    path = Path(settings.notice_crl) if settings.notice_crl is not None else (
        Path(settings.instance_path) / notice_pki.DEMO_CRL if settings.notice_demo_signing else None)
    if path is None or not path.exists():
        return []
    return [path.read_bytes()]


def signature_lines(office: str, signed_at: datetime, lang: str) -> list[str]:
    from portal.informs.notice import english_date, japanese_date

    local = signed_at.astimezone(JST)
    if lang == "ja":
        return ["電子署名（PAdES）", office, f"署名日時　{japanese_date(local.date(), western=False)}"
                f"{local:%H時%M分}（日本時間）"]
    return ["Digital signature (PAdES)", office, f"Signed {english_date(local.date())}, {local:%H:%M} JST"]


def sign(settings: Settings, rendered, *, signed_at: datetime, office: str, lang: str) -> bytes:
    """The rendered notice signed in its signature area, at ``signed_at`` (the approval time)."""
    m = material(settings)
    return pades.sign(rendered.pdf, key=m.key, cert=m.cert, chain=m.chain,  # type: ignore[arg-type]
                      signing_time=signed_at, page=rendered.page, box=rendered.box, name=office, location="東京都千代田区霞が関" if lang == "ja" else "Tokyo, Japan",
                      reason="インフォーム通知の発出" if lang == "ja" else "Issue of an inform notice")


def verify(settings: Settings, pdf: bytes) -> pades.Verdict:
    """The signature of ``pdf`` against the portal's CA (and its CRL, when there is one)."""
    from crypto.notice_verify import load_certificates

    pem = ca_pem(settings)
    if pem is None:
        return pades.Verdict(problem="no CA certificate configured")
    return pades.check(pdf, trust_roots=load_certificates(pem), crls=crls(settings))
