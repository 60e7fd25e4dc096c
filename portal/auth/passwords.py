"""Password hashing (Argon2id from ``cryptography``) and the NIST SP 800-63B rules."""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

MIN_LENGTH = 12
MAX_LENGTH = 128


@dataclass(frozen=True)
class Argon2Params:
    memory_kib: int = 19456  # OWASP: 19 MiB, t=2, p=1
    iterations: int = 2
    lanes: int = 1


def hash_password(password: str, params: Argon2Params) -> str:
    kdf = Argon2id(
        salt=os.urandom(16), length=32, iterations=params.iterations,
        lanes=params.lanes, memory_cost=params.memory_kib,
    )
    return kdf.derive_phc_encoded(_encode(password))


def verify_password(password: str, encoded: str | None) -> bool:
    if not encoded or len(password) > MAX_LENGTH:
        return False
    try:
        Argon2id.verify_phc_encoded(_encode(password), encoded)
        return True
    except (InvalidKey, ValueError):
        return False


_PHC = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")


def needs_rehash(encoded: str, params: Argon2Params) -> bool:
    m = _PHC.match(encoded or "")
    if not m:
        return True
    mem, it, lanes = (int(x) for x in m.groups())
    return mem < params.memory_kib or it < params.iterations or lanes < params.lanes


def _encode(password: str) -> bytes:
    # NIST 800-63B §5.1.1.2: normalise Unicode so the same password typed on another
    # keyboard or IME verifies.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


# A dummy hash to spend the same time when the account does not exist.
@lru_cache(maxsize=4)
def dummy_hash(params: Argon2Params) -> str:
    return hash_password("not-a-real-password-000", params)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("portal.auth").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def password_problems(password: str, *, email: str = "", name: str = "") -> list[str]:
    """Message ids (untranslated) for every rule the password breaks; empty when acceptable."""
    from portal.core.i18n import gettext as _

    problems: list[str] = []
    if len(password) > MAX_LENGTH:
        # Checked before anything else touches it, hashing included.
        return [_("Enter a password of at most %(n)d characters.", n=MAX_LENGTH)]
    if len(password) < MIN_LENGTH:
        problems.append(_("Enter a password of at least %(n)d characters.", n=MIN_LENGTH))
    lowered = password.lower()
    if lowered in common_passwords() or len(set(password)) < 4:
        problems.append(_("This password is too common. Choose a password that is hard to guess."))
    local = email.split("@")[0].lower()
    if (local and len(local) >= 4 and local in lowered) or (name and name.lower() in lowered and len(name) >= 4):
        problems.append(_("Do not use your e-mail address or name in your password."))
    return problems
