"""Allowed types, decided by content (magic numbers), not by the name alone."""
from __future__ import annotations

import os

ALLOWED_EXTENSIONS = {
    "pdf": {".pdf"},
    "zip": {".zip"},
    "ooxml": {".docx", ".xlsx", ".pptx"},
    "ole": {".doc", ".xls", ".ppt"},
    "png": {".png"},
    "jpeg": {".jpg", ".jpeg"},
    "gif": {".gif"},
    "tiff": {".tif", ".tiff"},
    "text": {".txt", ".csv"},
}
CONTENT_TYPES = {
    "pdf": "application/pdf", "zip": "application/zip", "png": "image/png", "jpeg": "image/jpeg",
    "gif": "image/gif", "tiff": "image/tiff", "ole": "application/x-ole-storage", "text": "text/plain; charset=utf-8",
}
OOXML_TYPES = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
SNIFF_BYTES = 8192


def kind_of(head: bytes) -> str | None:
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        # Office Open XML files are ZIP archives with [Content_Types].xml inside.
        return "ooxml" if b"[Content_Types].xml" in head or b"word/" in head or b"xl/" in head or b"ppt/" in head else "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith((b"MZ", b"\x7fELF", b"#!", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe")):
        return None
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text"
        except UnicodeDecodeError as e:
            # A multi-byte character cut at the end of the sniffed block is still text.
            if e.start >= len(head) - 3:
                return "text"
            try:
                head.decode("cp932")
                return "text"
            except UnicodeDecodeError:
                return None
    return None


def check(kind: str | None, filename: str) -> bool:
    ext = os.path.splitext(filename)[1].lower()
    if kind is None:
        return False
    if kind == "ooxml":
        return ext in ALLOWED_EXTENSIONS["ooxml"] or ext == ".zip"
    return ext in ALLOWED_EXTENSIONS[kind]


def content_type(kind: str, filename: str) -> str:
    if kind == "ooxml":
        return OOXML_TYPES.get(os.path.splitext(filename)[1].lower(), "application/zip")
    return CONTENT_TYPES[kind]
