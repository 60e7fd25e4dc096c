"""Offline verifier for the portal's signed notices (インフォーム通知), for anyone who holds one.

Needs only Python, pyHanko and the ministry's CA certificate (the portal serves it at
/notices/ca.pem)::

    python -m crypto.notice_verify NOTICE.pdf --ca CA.pem [--crl CA.crl ...] [--json]

It reports the signer, the signing time, whether the bytes are intact and whether the signing
certificate is trusted, expired or revoked (revocation is checked only against the CRL files
given: nothing is fetched). Exit codes:

- 0  valid: intact, the whole file signed, the certificate chains to the CA and is in force
- 1  damaged: no signature, or the file was changed after signing
- 2  certificate: intact, but the certificate is not trusted, expired or revoked
- 3  the file or the CA certificate cannot be read

Whether the portal later revoked the inform itself (a decision, not a certificate) is not in
the file: `portal informs verify` on the portal's side, or the case page, says that.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cryptography import x509

from .pades import EXIT_UNREADABLE, Verdict, check

WORDS = {
    "valid": "VALID: signed by the holder of the certificate below, unchanged since",
    "modified": "DAMAGED: the file was changed after it was signed",
    "unsigned": "DAMAGED: the file carries no valid notice signature",
    "unreadable": "UNREADABLE: not a PDF",
    "revoked": "CERTIFICATE REVOKED: the signing certificate has been revoked",
    "expired": "CERTIFICATE EXPIRED: the signing certificate is no longer in force",
    "untrusted": "CERTIFICATE NOT TRUSTED: the signing certificate does not chain to the CA given",
}


def describe(v: Verdict) -> list[str]:
    lines = [f"result: {WORDS[v.status]}"]
    if v.signed:
        lines.append(f"signer: {v.signer or '(unknown)'}")
        lines.append(f"signing time: {v.signing_time.isoformat() if v.signing_time else '(not given)'}")
        lines.append("integrity: " + ("intact, the whole file is signed" if v.intact and v.whole_file else
                                      "intact, but bytes were added after the signature" if v.intact else
                                      "FAILED: the signed bytes do not match the signature"))
        lines.append("certificate: " + ("trusted" if v.trusted else "revoked" if v.revoked else
                                        "expired" if v.expired else "not trusted"))
    if v.problem and v.status != "valid":
        lines.append(f"detail: {v.problem}")
    return lines


def as_json(v: Verdict) -> dict[str, object]:
    return {"status": v.status, "signer": v.signer, "signing_time": v.signing_time.isoformat() if v.signing_time
            else None, "intact": v.intact, "whole_file": v.whole_file, "trusted": v.trusted, "revoked": v.revoked,
            "expired": v.expired, "problem": v.problem}


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file (or one DER certificate)."""
    return x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m crypto.notice_verify", description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=Path, help="the notice (PDF)")
    p.add_argument("--ca", type=Path, required=True, help="the CA certificate you trust (PEM or DER)")
    p.add_argument("--crl", type=Path, action="append", default=[], help="a revocation list of that CA (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = p.parse_args(argv)
    try:
        pdf = args.file.read_bytes()
        roots = load_certificates(args.ca.read_bytes())
        crls = [c.read_bytes() for c in args.crl]
    except (OSError, ValueError) as exc:
        print(f"cannot read the input: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    v = check(pdf, trust_roots=roots, crls=crls)
    if args.json:
        print(json.dumps(as_json(v), ensure_ascii=False))
    else:
        print("\n".join(describe(v)))
    return v.exit_code


if __name__ == "__main__":
    sys.exit(main())
