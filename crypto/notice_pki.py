"""Certificates for signing the official notice: a demo CA and signing certificate for
development and tests, revocation lists, and the PKCS#12 bundle the portal signs with.

Production never uses :func:`create_demo`: the ministry's signing certificate comes from its
own CA as a PKCS#12 file (README "Signing the official notice"). The demo files say DEMO in
their names and in every subject, so a notice signed with them cannot pass for an official one.

The profile is what both verifiers need: RSA with PKCS#1 v1.5 (deterministic, so the same
document and time give the same signature; accepted by pyHanko and by poppler's NSS), key
usage digitalSignature + nonRepudiation on the signer and no extended key usage (NSS checks
the signer as an e-mail signer, which an EKU without emailProtection would fail).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

DEMO_CA_CERT = "DEMO-notice-ca.pem"
DEMO_CA_KEY = "DEMO-notice-ca-key.pem"
DEMO_SIGNING_P12 = "DEMO-notice-signing.p12"
DEMO_CRL = "DEMO-notice-ca.crl"
DEMO_FILES = (DEMO_CA_CERT, DEMO_CA_KEY, DEMO_SIGNING_P12, DEMO_CRL)
DEMO_MARK = "DEMO - not an official certificate"


@dataclass(frozen=True)
class Issued:
    """A key and its certificate."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEMO_MARK),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_ca(*, now: datetime | None = None, years: int = 10) -> Issued:
    now = now or datetime.now(timezone.utc)
    key = _key()
    name = _name("DEMO Inform Notice CA", "DEMO Ministry of Economy, Trade and Industry")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(key, cert)


def new_signer(ca: Issued, *, not_before: datetime | None = None, not_after: datetime | None = None,
               common_name: str = "DEMO Inform Notice Signing") -> Issued:
    """A signing certificate under ``ca``; by default valid from yesterday for three years."""
    now = datetime.now(timezone.utc)
    key = _key()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name, "DEMO Ministry of Economy, Trade and Industry"))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(days=1))
            .not_valid_after(not_after or now + timedelta(days=365 * 3))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    return Issued(key, cert)


def crl(ca: Issued, revoked: list[tuple[x509.Certificate, datetime]] = (), *,  # type: ignore[assignment]
        now: datetime | None = None, days: int = 30) -> bytes:
    """A CRL (DER) of ``ca`` listing ``revoked`` (certificate, revocation time)."""
    now = now or datetime.now(timezone.utc)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
         .last_update(now - timedelta(minutes=5)).next_update(now + timedelta(days=days)))
    for cert, when in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                                      .revocation_date(when).build())
    return b.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def p12_bytes(signer: Issued, chain: list[x509.Certificate], password: bytes | None = None) -> bytes:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return pkcs12.serialize_key_and_certificates(b"notice-signing", signer.key, signer.cert, chain, enc)


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def create_demo(directory: Path) -> list[Path]:
    """The demo CA (certificate, key, empty CRL) and a signing PKCS#12 without a password, each
    0600, unless already there. Returns the files created."""
    directory = Path(directory)
    paths = [directory / n for n in DEMO_FILES]
    if all(p.exists() for p in paths):
        return []
    if any(p.exists() for p in paths):
        raise FileExistsError(f"an incomplete demo signing set in {directory}: remove the DEMO-notice-* files "
                              "or complete them")
    ca = new_ca()
    signer = new_signer(ca)
    _write(paths[0], ca.cert.public_bytes(serialization.Encoding.PEM))
    _write(paths[1], ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    _write(paths[2], p12_bytes(signer, [ca.cert]))
    _write(paths[3], crl(ca, days=3650))
    return paths


def load_ca(directory: Path) -> Issued:
    """The demo CA back from its files (tests and `portal` revoke with it)."""
    key = serialization.load_pem_private_key((Path(directory) / DEMO_CA_KEY).read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the demo CA key is not an RSA key")
    return Issued(key, x509.load_pem_x509_certificate((Path(directory) / DEMO_CA_CERT).read_bytes()))


def load_p12(data: bytes, password: bytes | None) -> tuple[rsa.RSAPrivateKey, x509.Certificate,
                                                          list[x509.Certificate]]:
    """Key, certificate and chain from a PKCS#12 bundle; ValueError (TypeError for a key that
    is not RSA) names what is wrong."""
    key, cert, chain = pkcs12.load_key_and_certificates(data, password)
    if key is None or cert is None:
        raise ValueError("the PKCS#12 file holds no private key and certificate")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the signing key must be RSA (PKCS#1 v1.5 keeps the signature deterministic)")
    return key, cert, list(chain)
