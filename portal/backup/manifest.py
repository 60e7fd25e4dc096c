"""The manifest of a backup set: every file with its size and SHA-256, what the database
snapshot holds (schema revision, audit head and checkpoint, KEKs used), signed with the audit
Ed25519 key (``crypto.signing``).

What the signature proves depends on where the verifier's public key comes from: the key in
the manifest itself proves only that the set is intact (no file damaged or swapped since it
was written, by accident or by someone without the audit private key); ``--public-key`` with
a copy of the audit public key kept elsewhere proves it came from this portal."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from crypto import SigningKey, key_id_of, verify as verify_signature

FORMAT = "ttr-backup/1"
MANIFEST = "manifest.json"
KEYS = "keys"
# A path in a set: relative, forward slashes, no "..", nothing a user typed.
_SAFE = re.compile(r"\A(?:database\.(?:sqlite|pgdump)|blobs/[0-9a-f]{2}/[0-9a-f]{32}|"
                   r"keys/(?:keyring\.json|audit-signing\.pem|secret_key))\Z")
CHUNK = 1 << 20


class ManifestError(Exception):
    """The set is incomplete, damaged, tampered with or not a backup set."""


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    sha256: str


def canonical(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(manifest: dict, key: SigningKey) -> bytes:
    doc = {"manifest": manifest, "signature": base64.b64encode(key.sign(canonical(manifest))).decode("ascii")}
    return (json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")


def digest(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def root_of(entry_path: str, data_dir: Path, keys_dir: Path | None) -> Path:
    """Where a listed file lives: key files in the keys directory when they were kept apart."""
    if entry_path.startswith(KEYS + "/") and keys_dir is not None:
        return keys_dir / entry_path
    return data_dir / entry_path


def load(data_dir: Path, *, public_key: bytes | None = None) -> tuple[dict, str]:
    """Read and authenticate ``manifest.json``: its signature against ``public_key`` (or,
    without one, the key it names). Returns the manifest and the SHA-256 of the file."""
    path = data_dir / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest; not a backup set") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
        manifest, signature = doc["manifest"], base64.b64decode(doc["signature"], validate=True)
        if not isinstance(manifest, dict):
            raise TypeError
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise ManifestError(f"{path}: not a backup manifest") from None
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")
    embedded = str(manifest.get("public_key", "")).encode("ascii", "replace")
    try:
        if public_key is not None and key_id_of(public_key) != key_id_of(embedded):
            raise ManifestError(f"the set is signed with audit key {key_id_of(embedded)}, "
                                f"not with the public key given ({key_id_of(public_key)})")
        good = verify_signature(public_key or embedded, signature, canonical(manifest))
    except ValueError as exc:
        raise ManifestError(f"the manifest's public key is not usable: {exc}") from None
    if not good:
        raise ManifestError("the manifest's signature is not valid: the manifest was changed after it was signed")
    return manifest, hashlib.sha256(raw).hexdigest()


def entries(manifest: dict) -> list[Entry]:
    out = []
    try:
        for e in manifest["files"]:
            entry = Entry(str(e["path"]), int(e["size"]), str(e["sha256"]))
            if not _SAFE.match(entry.path):
                raise ManifestError(f"the manifest lists an unexpected path {entry.path!r}")
            out.append(entry)
    except (KeyError, TypeError, ValueError):
        raise ManifestError("the manifest's file list is malformed") from None
    if len({e.path for e in out}) != len(out):
        raise ManifestError("the manifest lists a file twice")
    return out


def check_files(data_dir: Path, keys_dir: Path | None, listed: Iterable[Entry]) -> None:
    """Every listed file present with its size and SHA-256, and nothing unlisted in the set."""
    listed = list(listed)
    for e in listed:
        p = root_of(e.path, data_dir, keys_dir)
        if not p.is_file() or p.is_symlink():
            raise ManifestError(f"{e.path}: missing from the set")
        size, sha = digest(p)
        if (size, sha) != (e.size, e.sha256):
            raise ManifestError(f"{e.path}: its content differs from the manifest (damaged or tampered)")
    known = {root_of(e.path, data_dir, keys_dir) for e in listed}
    for top in [d for d in (data_dir, keys_dir) if d is not None]:
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                p = Path(dirpath) / name
                if p not in known and p != data_dir / MANIFEST:
                    raise ManifestError(f"{p.relative_to(top)}: in the set but not in the manifest")
