"""PAdES signatures on the official notice, made and checked with pyHanko.

:func:`sign` adds one visible PAdES baseline (B-B) signature to a PDF as an incremental
update. The same input, key, certificate and signing time give the same bytes: RSA PKCS#1 v1.5
is deterministic, the signing time is the caller's (the approval time), the new
trailer ID is derived from the document and the time instead of pyHanko's random one, and
/ModDate is the signing time.

:func:`check` validates the signature of a PDF against the trust roots and revocation lists
given, with no network access, and says in a :class:`Verdict` who signed, when, and whether
the bytes are intact and the certificate trusted, expired or revoked.
"""
from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko.stamp import StaticStampStyle

FIELD = "MinistrySignature"

# Exit codes of the verifiers (crypto.notice_verify and `portal informs verify`).
EXIT_VALID, EXIT_DAMAGED, EXIT_CERTIFICATE, EXIT_UNREADABLE = 0, 1, 2, 3


def _off_loop(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call one of pyHanko's synchronous functions. They run asyncio.run(), which refuses in a
    thread whose event loop is running (an async server, Playwright's sync API in the test
    process): there, the call runs in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args, **kwargs)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class _AtTime(signers.PdfSigner):
    """A PdfSigner whose signing time (the signature dictionary's /M) is the one given."""

    def __init__(self, *args: Any, signing_time: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signing_time = signing_time

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._signing_time
        return session


class _Writer(IncrementalPdfFileWriter):
    """An incremental writer whose /ModDate is the signing time, not the clock's."""

    def __init__(self, data: bytes, modified: datetime) -> None:
        super().__init__(BytesIO(data))
        self._modified = modified

    def _update_meta(self) -> None:
        super()._update_meta()
        if self._info is not None:
            self._info.get_object()[generic.pdf_name("/ModDate")] = generic.pdf_date(self._modified)


def sign(pdf: bytes, *, key: rsa.RSAPrivateKey, cert: x509.Certificate, chain: list[x509.Certificate],
         signing_time: datetime, page: int, box: tuple[float, float, float, float], name: str, location: str,
         reason: str) -> bytes:
    """``pdf`` with a visible signature field at ``box`` (points, lower-left origin) on
    ``page`` (0-based; -1 the last). The field's own appearance is empty: the document draws
    what the signature area shows (who signs, when) in its page, where the signature covers it
    and no font has to be embedded a second time."""
    if signing_time.tzinfo is None:
        raise ValueError("signing_time must carry its time zone")
    signer = signers.SimpleSigner(
        signing_cert=_asn1_cert(cert),
        signing_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        cert_registry=SimpleCertificateStore.from_certs([_asn1_cert(c) for c in chain]))
    meta = signers.PdfSignatureMetadata(field_name=FIELD, md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES, name=name, location=location,
                                        reason=reason)
    style = StaticStampStyle(border_width=0)
    writer = _Writer(pdf, signing_time)
    seed = hashlib.sha256(pdf + signing_time.isoformat().encode()).digest()[:16]
    try:  # the first ID stays the document's (ISO 32000 §14.4)
        raw = writer.prev.trailer["/ID"][0]
        first = raw.original_bytes if isinstance(raw, generic.TextStringObject) else bytes(raw)
    except (KeyError, IndexError, TypeError):
        first = seed
    # pyHanko draws a random second ID; the notice's is derived from what it is.
    writer._document_id = generic.ArrayObject([generic.ByteStringObject(first), generic.ByteStringObject(seed)])
    out = BytesIO()
    pdf_signer = _AtTime(meta, signer=signer, stamp_style=style, signing_time=signing_time,
                         new_field_spec=fields.SigFieldSpec(FIELD, on_page=page, box=(
                             round(box[0]), round(box[1]), round(box[2]), round(box[3]))))
    _off_loop(pdf_signer.sign_pdf, writer, output=out)
    return out.getvalue()


@dataclass(frozen=True)
class Verdict:
    """What a verifier says about one PDF."""

    signed: bool = False
    intact: bool = False         # the signed bytes hash to what was signed, and the signature checks out
    whole_file: bool = False     # nothing was appended after the signature
    trusted: bool = False        # the signer's certificate chains to a trust root, valid now
    revoked: bool = False
    expired: bool = False
    signer: str = ""
    signing_time: datetime | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.signed and self.intact and self.whole_file and self.trusted

    @property
    def status(self) -> str:
        """valid | unreadable | unsigned | modified | revoked | expired | untrusted"""
        if self.ok:
            return "valid"
        if self.problem == "unreadable":
            return "unreadable"
        if not self.signed:
            return "unsigned"
        if not (self.intact and self.whole_file):
            return "modified"
        return "revoked" if self.revoked else "expired" if self.expired else "untrusted"

    @property
    def exit_code(self) -> int:
        return {"valid": EXIT_VALID, "unreadable": EXIT_UNREADABLE, "revoked": EXIT_CERTIFICATE,
                "expired": EXIT_CERTIFICATE, "untrusted": EXIT_CERTIFICATE}.get(self.status, EXIT_DAMAGED)


def check(pdf: bytes, *, trust_roots: list[x509.Certificate], crls: list[bytes] = (),  # type: ignore[assignment]
          at: datetime | None = None) -> Verdict:
    """Validate the one signature of ``pdf`` offline. With ``crls`` revocation is checked
    strictly (a certificate the lists do not cover fails); without, it is not checked."""
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        sigs = reader.embedded_signatures
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not a readable PDF
        return Verdict(problem="unreadable" if not pdf.startswith(b"%PDF-") else f"modified: {exc}")
    if not sigs:
        return Verdict(problem="no signature")
    if len(sigs) != 1:
        return Verdict(signed=True, problem=f"{len(sigs)} signatures; the notice carries exactly one")
    sig = sigs[0]
    vc = ValidationContext(trust_roots=[_asn1_cert(c) for c in trust_roots], crls=list(crls), allow_fetching=False,
                           revocation_mode="require" if crls else "soft-fail", moment=at)
    try:
        st = _off_loop(validate_pdf_signature, sig, vc)
    except Exception as exc:  # noqa: BLE001 - a damaged signature container
        return Verdict(signed=True, problem=f"modified: {exc}")
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    indic = st.trust_problem_indic
    indic_name = str(getattr(indic, "name", "")) if indic is not None else ""
    cert = st.signing_cert
    return Verdict(
        signed=True, intact=bool(st.intact and st.valid),
        whole_file=st.coverage == SignatureCoverageLevel.ENTIRE_FILE,
        trusted=bool(st.trusted), revoked=bool(st.revoked) or indic_name in ("REVOKED", "REVOKED_NO_POE"),
        expired=indic_name in ("EXPIRED", "OUT_OF_BOUNDS_NO_POE", "OUT_OF_BOUNDS_NOT_REVOKED"),
        signer=cert.subject.human_friendly if cert is not None else "",
        signing_time=st.signer_reported_dt,
        problem=indic_name.lower())
