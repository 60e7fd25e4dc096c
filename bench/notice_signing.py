"""What signing costs on top of rendering the official notice (issue 16).

Run: .venv/bin/python bench/notice_signing.py [--warm N]
Prints, for the Japanese notice:

- first: a fresh interpreter rendering one notice (fonts parsed), against a fresh interpreter
  rendering and signing one (fonts parsed, pyHanko imported, the PKCS#12 read): their times and
  ratio;
- warm: the medians of N renders and of N render+sign in one process (interleaved, so machine
  load hits both alike), and their ratio;
- sizes: unsigned and signed, Japanese and English; the time pyHanko takes to verify one;
- that signing twice at the same time gives the same bytes.

Appends a line to bench/results/notice_signing.json and writes poppler's pdfsig report on a
signed demo notice to bench/results/notice_pdfsig.txt (trusting the demo CA through an NSS
database when certutil is installed).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import RESULTS, write_result  # noqa: E402
from bench.inform_notice import sample  # noqa: E402

WHEN = datetime(2026, 11, 22, 1, 30, tzinfo=timezone.utc)
OFFICE = "経済産業省 貿易経済安全保障局 安全保障貿易管理課"


def _full(data):
    from dataclasses import replace

    return replace(data, office=OFFICE, contact="電話 03-3501-1511（代表）")


def _signed(data, material, lang="ja") -> bytes:
    """What approval does: compose with the signature area filled in, then sign."""
    from crypto import pades
    from portal.informs.notice import compose
    from portal.informs.signing import signature_lines

    rendered = compose(data, lang, signature=signature_lines(OFFICE, WHEN, lang))
    key, cert, chain = material
    return pades.sign(rendered.pdf, key=key, cert=cert, chain=chain, signing_time=WHEN, page=rendered.page,
                      box=rendered.box, name=OFFICE, location="東京都千代田区霞が関", reason="インフォーム通知の発出")


def _load(demo: Path):
    from crypto import notice_pki

    return notice_pki.load_p12((demo / notice_pki.DEMO_SIGNING_P12).read_bytes(), None)


def first(mode: str, demo: Path) -> float:
    """Run in a fresh interpreter: the time of one render (mode=render) or render+sign."""
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
            "from pathlib import Path\n"
            "t0 = time.perf_counter()\n"
            "from bench.notice_signing import _full, _load, _signed\n"
            "from bench.inform_notice import sample\n"
            "from portal.informs.notice import compose\n"
            + (f"_signed(_full(sample()), _load(Path({str(demo)!r})))\n" if mode == "sign"
               else "compose(_full(sample()), 'ja')\n")
            + "print(time.perf_counter() - t0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def pdfsig_report(signed: bytes, demo: Path, tmp: Path) -> str:
    from crypto import notice_pki

    if shutil.which("pdfsig") is None:
        return "pdfsig not installed (apt-get install poppler-utils)\n"
    path = tmp / "INF-2026-0001.pdf"
    path.write_bytes(signed)
    args = ["pdfsig"]
    header = "$ pdfsig INF-2026-0001.pdf"
    if shutil.which("certutil"):
        nss = tmp / "nss"
        nss.mkdir()
        subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
        subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "demo-notice-ca", "-t", "C,C,C", "-i",
                        str(demo / notice_pki.DEMO_CA_CERT)], check=True, capture_output=True)
        args += ["-nssdir", f"sql:{nss}"]
        header = "$ pdfsig -nssdir sql:NSSDB INF-2026-0001.pdf   # NSSDB trusts DEMO-notice-ca.pem (certutil -t C,C,C)"
    out = subprocess.run(args + [str(path)], capture_output=True, text=True, timeout=60)
    return header + "\n" + out.stdout.replace(str(tmp) + "/", "") + out.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=int, default=10)
    args = ap.parse_args()
    from crypto import notice_pki, pades
    from portal.informs.notice import compose

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        demo = tmp / "demo"
        demo.mkdir()
        notice_pki.create_demo(demo)
        render_first = first("render", demo)
        sign_first = first("sign", demo)

        material = _load(demo)
        data = _full(sample())
        r = compose(data, "ja")
        signed = _signed(data, material)  # warm everything up
        renders, signs = [], []
        for _ in range(args.warm):
            t0 = time.perf_counter()
            compose(data, "ja")
            renders.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _signed(data, material)
            signs.append(time.perf_counter() - t0)
        render_warm, sign_warm = statistics.median(renders), statistics.median(signs)
        t0 = time.perf_counter()
        verdict = pades.check(signed, trust_roots=[material[2][0]])
        verify_s = time.perf_counter() - t0
        r_en = compose(data, "en")
        signed_en = _signed(data, material, "en")
        identical = _signed(data, material) == signed
        (RESULTS / "notice_pdfsig.txt").write_text(pdfsig_report(signed, demo, tmp))

    result = {"render_first_s": round(render_first, 3), "render_sign_first_s": round(sign_first, 3),
              "ratio_first": round(sign_first / render_first, 2), "render_warm_median_s": round(render_warm, 3),
              "render_sign_warm_median_s": round(sign_warm, 3), "ratio_warm": round(sign_warm / render_warm, 2),
              "warm_runs": args.warm, "ja_unsigned_bytes": len(r.pdf), "ja_signed_bytes": len(signed),
              "en_unsigned_bytes": len(r_en.pdf), "en_signed_bytes": len(signed_en),
              "verify_s": round(verify_s, 3), "verdict": verdict.status, "same_time_same_bytes": identical}
    path = write_result("notice_signing", result)
    print(f"first (fresh interpreter): render {render_first:.3f} s, render+sign {sign_first:.3f} s "
          f"= {sign_first / render_first:.2f}x")
    print(f"warm (median of {args.warm}): render {render_warm:.3f} s, render+sign {sign_warm:.3f} s "
          f"= {sign_warm / render_warm:.2f}x")
    print(f"size: ja {len(r.pdf):,} -> {len(signed):,} bytes signed; en {len(r_en.pdf):,} -> {len(signed_en):,}")
    print(f"verify (pyHanko): {verify_s:.3f} s, {verdict.status}; signing twice at one time gives the same bytes: "
          f"{identical}")
    print(f"appended to {path}; pdfsig report in {RESULTS / 'notice_pdfsig.txt'}")


if __name__ == "__main__":
    main()
