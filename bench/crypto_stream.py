"""Attachment encryption and decryption against the bare primitives (issue 5).

Encrypts a 1 GiB stream with ``crypto.StreamEncryptor`` (fed 1 MiB chunks, default 64 KiB
segments) and decrypts it with ``crypto.decrypt_stream`` (fed 1 MiB ciphertext chunks, as the
directory blob store reads them), and in the same run does the same work with the bare
primitives:

    encryption baseline  AESGCM.encrypt over the same 64 KiB segments (zero-copy memoryview
                         slices of the input chunk, same key, nonces and associated data)
                         + hashlib SHA-256 of the plaintext (StreamEncryptor computes it too)
    decryption baseline  AESGCM.decrypt of the same ciphertext segments, handed over one
                         segment at a time. No SHA-256: decrypt_stream does not hash, so
                         adding it to the baseline would flatter the ratio.

Reported ratio = baseline seconds / stream seconds (1.0 = no overhead). Goal >= 0.8.
Best of --repeat (3) for each measurement; the runs alternate so drift hits both alike.

The plaintext is one random 1 MiB buffer reused (never 1 GiB in memory). The ciphertext for
the decryption runs is written once to a temporary file (removed at the end) and read back
in chunks; the time spent reading it is measured and subtracted on both sides, so only the
decryption work is compared.

    .venv/bin/python bench/crypto_stream.py [--mib 1024] [--repeat 3]

Prints one line per measurement and appends one JSON line to bench/results/crypto_stream.json.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

from _common import write_result

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto import StreamEncryptor, decrypt_stream
from crypto.stream import (COMMITMENT_SIZE, DEFAULT_SEGMENT_SIZE, FIXED_HEADER_SIZE, TAG_SIZE, _FIXED, _derive)

GOAL = 0.8
CHUNK = 1 << 20
ATTACHMENT_ID = b"0123456789abcdef0123456789abcdef"  # like a portal uid: 32 characters


def _vm(field: str) -> int | None:
    """This process's VmRSS/VmHWM in KiB (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- encryption

def enc_stream(dek: bytes, block: bytes, chunks: int) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    enc = StreamEncryptor(dek, ATTACHMENT_ID)
    n = len(enc.header)
    update = enc.update
    for _ in range(chunks):
        out = update(block)
        n += len(out)
    n += len(enc.finalize())
    dt = time.perf_counter() - t0
    return dt, n, enc.plaintext_sha256


def enc_bare(dek: bytes, block: bytes, chunks: int, seg: int = DEFAULT_SEGMENT_SIZE) -> tuple[float, int, str]:
    """The same segments, key, nonces and AD as the stream, with nothing around them."""
    enc = StreamEncryptor(dek, ATTACHMENT_ID)  # only for a header, key and nonce prefix to mirror
    header = enc.header
    salt, nonce_prefix = header[10:42], header[42:49]
    key, _commit = _derive(dek, salt, header[:-COMMITMENT_SIZE])
    ad = hashlib.sha256(header).digest()
    per_chunk = len(block) // seg
    total = per_chunk * chunks
    nonces = [nonce_prefix + struct.pack(">IB", i, 1 if i == total - 1 else 0) for i in range(total)]
    offsets = [(j * seg, (j + 1) * seg) for j in range(per_chunk)]
    view = memoryview(block)
    t0 = time.perf_counter()
    aead = AESGCM(key)
    encrypt = aead.encrypt
    sha = hashlib.sha256()
    n = len(header)
    i = 0
    for _ in range(chunks):
        sha.update(view)
        for a, b in offsets:
            n += len(encrypt(nonces[i], view[a:b], ad))
            i += 1
    digest = sha.hexdigest()
    dt = time.perf_counter() - t0
    return dt, n, digest


# ---------------------------------------------------------------- decryption

def write_ciphertext(dek: bytes, block: bytes, chunks: int, path: Path) -> tuple[str, int]:
    enc = StreamEncryptor(dek, ATTACHMENT_ID)
    with path.open("wb") as f:
        f.write(enc.header)
        for _ in range(chunks):
            f.write(enc.update(block))
        f.write(enc.finalize())
    return enc.plaintext_sha256, path.stat().st_size


class _TimedChunks:
    """The ciphertext file in 1 MiB chunks; ``io`` accumulates the time spent reading."""

    def __init__(self, f):
        self.f, self.io = f, 0.0

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        t = time.perf_counter()
        data = self.f.read(CHUNK)
        self.io += time.perf_counter() - t
        if not data:
            raise StopIteration
        return data


def dec_stream(dek: bytes, path: Path, check: bool = False) -> tuple[float, int, str | None]:
    sha = hashlib.sha256() if check else None
    with path.open("rb", buffering=0) as f:
        src = _TimedChunks(f)
        t0 = time.perf_counter()
        n = 0
        for pt in decrypt_stream(dek, ATTACHMENT_ID, src):
            n += len(pt)
            if sha is not None:
                sha.update(pt)
        dt = time.perf_counter() - t0 - src.io
    return dt, n, (sha.hexdigest() if sha is not None else None)


def dec_bare(dek: bytes, path: Path, hash_plaintext: bool = False) -> tuple[float, int, str | None]:
    """The same segments decrypted with AESGCM.decrypt, read one ciphertext segment at a
    time (reading excluded), so there is no framing work at all."""
    with path.open("rb", buffering=0) as f:
        head = f.read(FIXED_HEADER_SIZE)
        _m, _v, _a, seg, salt, nonce_prefix, id_len = _FIXED.unpack(head)
        head += f.read(id_len + COMMITMENT_SIZE)
        key, _commit = _derive(dek, salt, head[:-COMMITMENT_SIZE])
        ad = hashlib.sha256(head).digest()
        ct_seg = seg + TAG_SIZE
        body = os.fstat(f.fileno()).st_size - len(head)
        total = -(-body // ct_seg)
        nonces = [nonce_prefix + struct.pack(">IB", i, 1 if i == total - 1 else 0) for i in range(total)]
        aead = AESGCM(key)
        decrypt = aead.decrypt
        sha = hashlib.sha256() if hash_plaintext else None
        io = 0.0
        n = 0
        t0 = time.perf_counter()
        for i in range(total):
            t = time.perf_counter()
            data = f.read(ct_seg)
            io += time.perf_counter() - t
            pt = decrypt(nonces[i], data, ad)
            if sha is not None:
                sha.update(pt)
            n += len(pt)
        dt = time.perf_counter() - t0 - io
    return dt, n, (sha.hexdigest() if sha is not None else None)


# ---------------------------------------------------------------- main

def _line(label: str, seconds: float, nbytes: int, run: int) -> None:
    print(f"{label:<34} run {run}  {seconds:7.3f} s  {nbytes / seconds / 1e6:8.1f} MB/s", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="stream size in MiB (default 1024 = 1 GiB)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    ap.add_argument("--tmp", default=None, help="directory for the temporary ciphertext file")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    size = args.mib * CHUNK
    block = os.urandom(CHUNK)
    dek = os.urandom(32)
    best: dict[str, float] = {}

    def keep(name: str, dt: float) -> None:
        best[name] = min(best.get(name, float("inf")), dt)

    print(f"crypto_stream: {args.mib} MiB, 1 MiB chunks, {DEFAULT_SEGMENT_SIZE // 1024} KiB segments, "
          f"best of {args.repeat}", flush=True)

    # --- encryption
    expected = None
    for run in range(1, args.repeat + 1):
        dt, n_s, sha_s = enc_stream(dek, block, args.mib)
        _line("encrypt StreamEncryptor", dt, size, run)
        keep("encrypt_stream", dt)
        dt, n_b, sha_b = enc_bare(dek, block, args.mib)
        _line("encrypt bare AESGCM+SHA-256", dt, size, run)
        keep("encrypt_bare", dt)
        if n_s != n_b or sha_s != sha_b:
            raise SystemExit(f"stream and bare encryption disagree: {n_s} {n_b} {sha_s} {sha_b}")
        expected = sha_s

    # --- decryption
    tmpdir = Path(tempfile.mkdtemp(prefix="ttr-bench-crypto-", dir=args.tmp))
    path = tmpdir / "stream.ttra"
    try:
        sha_written, ct_size = write_ciphertext(dek, block, args.mib, path)
        assert sha_written == expected
        # An untimed check that the round trip is exact.
        _dt, n, sha = dec_stream(dek, path, check=True)
        if n != size or sha != expected:
            raise SystemExit("decrypt_stream did not give the plaintext back")
        for run in range(1, args.repeat + 1):
            dt, n, _ = dec_stream(dek, path)
            assert n == size
            _line("decrypt decrypt_stream", dt, size, run)
            keep("decrypt_stream", dt)
            dt, n, _ = dec_bare(dek, path)
            assert n == size
            _line("decrypt bare AESGCM", dt, size, run)
            keep("decrypt_bare", dt)
        # For information only: the bare decryption plus SHA-256 (not the ratio's baseline).
        dt, n, sha = dec_bare(dek, path, hash_plaintext=True)
        assert n == size and sha == expected
        _line("(info) decrypt bare AESGCM+SHA-256", dt, size, 1)
        info_dec_bare_sha = dt
    finally:
        path.unlink(missing_ok=True)
        tmpdir.rmdir()

    enc_ratio = best["encrypt_bare"] / best["encrypt_stream"]
    dec_ratio = best["decrypt_bare"] / best["decrypt_stream"]
    mbps = {k: round(size / v / 1e6, 1) for k, v in best.items()}
    print(f"encrypt ratio (bare / StreamEncryptor)  {enc_ratio:.3f}  "
          f"({mbps['encrypt_stream']} vs {mbps['encrypt_bare']} MB/s)  goal >= {GOAL}: "
          f"{'met' if enc_ratio >= GOAL else 'NOT met'}")
    print(f"decrypt ratio (bare / decrypt_stream)   {dec_ratio:.3f}  "
          f"({mbps['decrypt_stream']} vs {mbps['decrypt_bare']} MB/s)  goal >= {GOAL}: "
          f"{'met' if dec_ratio >= GOAL else 'NOT met'}")
    hwm = _vm("VmHWM")
    elapsed = time.perf_counter() - started
    print(f"bench process peak RSS {hwm / 1024 if hwm else float('nan'):.1f} MiB; total {elapsed:.1f} s")
    path_out = write_result("crypto_stream", {
        "bytes": size, "chunk": CHUNK, "segment_size": DEFAULT_SEGMENT_SIZE, "repeat": args.repeat,
        "ciphertext_bytes": ct_size,
        "seconds_best": {k: round(v, 4) for k, v in best.items()},
        "mb_per_s_best": mbps,
        "encrypt_ratio": round(enc_ratio, 3), "decrypt_ratio": round(dec_ratio, 3),
        "encrypt_baseline": "AESGCM.encrypt per 64 KiB segment + hashlib.sha256 of the plaintext",
        "decrypt_baseline": "AESGCM.decrypt per ciphertext segment, no SHA-256 (decrypt_stream does not hash)",
        "info_decrypt_bare_with_sha256_mb_per_s": round(size / info_dec_bare_sha / 1e6, 1),
        "goal": GOAL, "goal_met": enc_ratio >= GOAL and dec_ratio >= GOAL,
        "process_peak_rss_kib": hwm, "total_seconds": round(elapsed, 1),
    })
    print(f"wrote {path_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
