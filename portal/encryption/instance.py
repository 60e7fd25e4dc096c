"""The keyring and the audit signing key under the instance folder (DESIGN §7, §8)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from portal.config import Settings


def _check_mode(path: Path) -> bool:
    return path.exists() and (path.stat().st_mode & 0o077) == 0


def keyring_status(settings: Settings) -> str:
    path = Path(str(settings.keyring_path))
    if not path.exists():
        return "missing"
    if not _check_mode(path):
        return "insecure_permissions"
    try:
        from crypto.kek import FileKeyring

        FileKeyring(path)
    except Exception:  # noqa: BLE001
        return "unreadable"
    return "ok"


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_instance(settings: Settings) -> list[str]:
    """Create what is missing under instance/, each file 0600. Returns what was created."""
    created: list[str] = []
    inst = Path(settings.instance_path)
    inst.mkdir(parents=True, exist_ok=True)
    os.chmod(inst, 0o700)
    secret = inst / "secret_key"
    if not os.environ.get("PORTAL_SECRET_KEY") and not secret.exists():
        _write_secret(secret, secrets.token_urlsafe(48).encode())
        created.append(str(secret))
    from crypto.kek import FileKeyring
    from crypto.signing import SigningKey

    keyring = Path(str(settings.keyring_path))
    if not keyring.exists():
        keyring.parent.mkdir(parents=True, exist_ok=True)
        FileKeyring.create(keyring)
        created.append(str(keyring))
    audit_key = Path(str(settings.audit_key_path))
    if not audit_key.exists():
        audit_key.parent.mkdir(parents=True, exist_ok=True)
        SigningKey.create(audit_key)
        created.append(str(audit_key))
    if settings.notice_signing_p12 is None:
        # No ministry key configured: a demo CA and notice-signing certificate (DEMO in every
        # file name and subject), which the portal signs with outside production or with PORTAL_DEMO.
        from crypto.notice_pki import create_demo

        created.extend(str(p) for p in create_demo(inst))
    return created
