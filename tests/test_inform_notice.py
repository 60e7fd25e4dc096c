"""The official inform notice PDF (portal/informs/notice.py): embedded fonts, byte-identical
output, the text a company must see, era dates, pagination, literal rendering of user text,
and the renderer touching neither files nor the network once its fonts are loaded."""
from __future__ import annotations

import builtins
import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

pypdf = pytest.importorskip("pypdf")

from portal.informs import notice  # noqa: E402
from portal.informs.notice import (  # noqa: E402
    NoticeData, english_date, era_year, japanese_date, render_notice,
)

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = NoticeData(
    number="INF-2026-0001",
    issued_on=date(2026, 11, 22),
    addressee_name="株式会社サンプル精密工業",
    corporate_number="1234567890123",
    addressee_address="〒100-8901 東京都千代田区霞が関一丁目3番1号",
    report_reference="TTR-2026-000012",
    technology_ja="高純度フッ化水素の製造に係るプロセス制御技術",
    technology_en="Process control technology for high-purity hydrogen fluoride",
    destination="アメリカ合衆国",
    legal_basis="外国為替及び外国貿易法第55条の8、外国為替令第18条の8第1項",
    reasons="本件技術は軍事転用のおそれが高い。\n提供先の最終需要者が特定されていない。",
    conditions="1. 管理責任者を定めること。\n2. 再移転を禁止すること。",
    issuer="経済産業大臣",
)
SAMPLE_EN = replace(
    SAMPLE,
    addressee_name="Sample Precision Industries Co., Ltd.",
    addressee_address="1-3-1 Kasumigaseki, Chiyoda-ku, Tokyo 100-8901",
    destination="United States of America",
    legal_basis="Article 55-8 of the Foreign Exchange and Foreign Trade Act",
    reasons="The technology carries a high risk of military diversion.",
    conditions="",
    issuer="Minister of Economy, Trade and Industry",
)
STANDARD_FONTS = (b"Helvetica", b"Times-Roman", b"Times New Roman", b"Courier", b"Arial",
                  b"ZapfDingbats", b"/Symbol", b"MS-Mincho", b"MS-Gothic", b"HeiseiMin",
                  b"HeiseiKakuGo", b"KozMin", b"Noto")


def pages_text(pdf: bytes) -> list[str]:
    return [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def flat(text: str) -> str:
    """Extracted text without line breaks, so wrapped phrases can be searched for."""
    return text.replace("\n", "")


@pytest.fixture(scope="module")
def ja_pdf() -> bytes:
    return render_notice(SAMPLE)


@pytest.fixture(scope="module")
def en_pdf() -> bytes:
    return render_notice(SAMPLE_EN, "en")


# --------------------------------------------------------------------------- the file

@pytest.mark.parametrize("which", ["ja_pdf", "en_pdf"])
def test_is_a_pdf_with_the_mincho_and_plex_fonts_embedded_and_no_other_font(request, which):
    """The body and footers in BIZ UD Mincho (明朝), headings in Plex Sans JP Bold (issue 16)."""
    pdf = request.getfixturevalue(which)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert b"/FontFile2" in pdf and b"IBMPlexSansJPBold" in pdf and b"BIZUDMincho" in pdf
    for name in STANDARD_FONTS:
        assert name not in pdf, name
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    seen = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            assert font["/Subtype"] == "/Type0"  # composite font: glyphs come from the file
            descendant = font["/DescendantFonts"][0].get_object()
            descriptor = descendant["/FontDescriptor"].get_object()
            assert "/FontFile2" in descriptor, font["/BaseFont"]  # embedded, not referenced
            assert "IBMPlexSansJP" in font["/BaseFont"] or "BIZUDMincho" in font["/BaseFont"]
            seen.add(str(font["/BaseFont"]))
    assert seen == {"/MPDFAA+BIZUDMincho", "/MPDFAA+IBMPlexSansJPBold"}


def test_is_a4_with_metadata_from_the_issue_date(ja_pdf):
    reader = pypdf.PdfReader(io.BytesIO(ja_pdf))
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)
    assert b"/CreationDate (D:20261122000000+09'00')" in ja_pdf
    assert b"/ModDate" not in ja_pdf  # nothing records "now"
    assert reader.metadata.title == "インフォーム通知 INF-2026-0001"
    assert reader.metadata.author == "経済産業大臣"


# --------------------------------------------------------------------------- deterministic

def test_two_renders_are_byte_identical(ja_pdf, en_pdf):
    assert render_notice(SAMPLE) == ja_pdf
    assert render_notice(SAMPLE_EN, "en") == en_pdf
    assert ja_pdf != en_pdf


def test_the_same_bytes_come_out_of_another_process(ja_pdf):
    """Another interpreter (fresh font cache, different hash seed) gives the same SHA-256."""
    code = (
        "import hashlib, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from tests.test_inform_notice import SAMPLE\n"
        "from portal.informs.notice import render_notice\n"
        "print(hashlib.sha256(render_notice(SAMPLE)).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == hashlib.sha256(ja_pdf).hexdigest()


def test_different_data_gives_different_bytes(ja_pdf):
    assert render_notice(replace(SAMPLE, number="INF-2026-0002")) != ja_pdf
    assert render_notice(replace(SAMPLE, issued_on=date(2026, 11, 23))) != ja_pdf


def test_concurrent_renders_match_sequential_ones(ja_pdf, en_pdf):
    """The cached fonts are shared between documents; threads must not disturb each other."""
    other = replace(SAMPLE, reasons="別の理由。" * 200, number="INF-2026-0009")
    expected_other = render_notice(other)
    jobs = [(SAMPLE, "ja", ja_pdf), (SAMPLE_EN, "en", en_pdf), (other, "ja", expected_other)] * 2
    results: list[bytes | BaseException] = [b""] * len(jobs)

    def run(i: int) -> None:
        try:
            results[i] = render_notice(jobs[i][0], jobs[i][1])
        except BaseException as exc:  # noqa: BLE001  # pragma: no cover - reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (_, _, expected), got in zip(jobs, results, strict=True):
        assert got == expected


# --------------------------------------------------------------------------- content

def test_japanese_notice_says_what_it_must(ja_pdf):
    text = flat("".join(pages_text(ja_pdf)))
    for phrase in (
        "インフォーム通知（許可申請を要する旨の通知）",
        "INF-2026-0001",
        "令和8年11月22日（2026年11月22日）",
        "株式会社サンプル精密工業　殿",
        "法人番号　1234567890123",
        "東京都千代田区霞が関一丁目3番1号",
        "TTR-2026-000012",
        "高純度フッ化水素の製造に係るプロセス制御技術",
        "Process control technology for high-purity hydrogen fluoride",
        "アメリカ合衆国",
        "外国為替及び外国貿易法第55条の8、外国為替令第18条の8第1項",
        "本件技術は軍事転用のおそれが高い。",
        "提供先の最終需要者が特定されていない。",
        "2. 再移転を禁止すること。",
        "許可申請を行うこと",
        "経済産業大臣",
        "以上",
    ):
        assert phrase in text, phrase


def test_english_notice_says_what_it_must(en_pdf):
    text = flat(" ".join(pages_text(en_pdf)))
    for phrase in (
        "Inform Notice",
        "No. INF-2026-0001",
        "22 November 2026",
        "To: Sample Precision Industries Co., Ltd.",
        "Corporate Number: 1234567890123",
        "TTR-2026-000012",
        "Process control technology for high-purity hydrogen fluoride",
        "高純度フッ化水素の製造に係るプロセス制御技術",
        "United States of America",
        "Article 55-8 of the Foreign Exchange and Foreign Trade Act",
        "The technology carries a high risk of military diversion.",
        "Conditions",
        "None",
        "must apply for a licence",
        "Minister of Economy, Trade and Industry",
    ):
        assert phrase in text, phrase
    assert "令和" not in text  # the English notice uses the Western date only


def test_empty_conditions_read_as_none():
    assert "条件なし" in flat(pages_text(render_notice(replace(SAMPLE, conditions="")))[0])


@pytest.mark.parametrize("lang", ["xx", "JA", "", "fr"])
def test_unknown_language_is_refused(lang):
    with pytest.raises(ValueError):
        render_notice(SAMPLE, lang)


@pytest.mark.parametrize("changes", [
    {"corporate_number": "123456789012"},
    {"corporate_number": "12345678901234"},
    {"corporate_number": "１２３４５６７８９０１２３"},
    {"reasons": "  \n "},
    {"legal_basis": ""},
    {"technology_ja": "", "technology_en": ""},
])
def test_incomplete_data_is_refused(changes):
    with pytest.raises(ValueError):
        render_notice(replace(SAMPLE, **changes))


# --------------------------------------------------------------------------- dates

@pytest.mark.parametrize("day, era, year", [
    (date(1989, 1, 8), "平成", 1),
    (date(1989, 12, 31), "平成", 1),
    (date(1990, 1, 1), "平成", 2),
    (date(2019, 4, 30), "平成", 31),
    (date(2019, 5, 1), "令和", 1),
    (date(2019, 12, 31), "令和", 1),
    (date(2020, 1, 1), "令和", 2),
    (date(2026, 11, 22), "令和", 8),
])
def test_era_year(day, era, year):
    assert era_year(day) == (era, year)


def test_japanese_date_uses_gannen_and_adds_the_western_date():
    assert japanese_date(date(2019, 4, 30)) == "平成31年4月30日（2019年4月30日）"
    assert japanese_date(date(2019, 5, 1)) == "令和元年5月1日（2019年5月1日）"
    assert japanese_date(date(1989, 1, 8), western=False) == "平成元年1月8日"
    assert japanese_date(date(2026, 11, 22)) == "令和8年11月22日（2026年11月22日）"


def test_dates_before_heisei_are_refused():
    with pytest.raises(ValueError):
        era_year(date(1989, 1, 7))


def test_english_date_is_locale_independent():
    assert english_date(date(2026, 11, 22)) == "22 November 2026"
    assert english_date(date(2027, 1, 3)) == "3 January 2027"


def test_issue_date_on_the_notice_uses_the_era():
    text = flat(pages_text(render_notice(replace(SAMPLE, issued_on=date(2019, 5, 1))))[0])
    assert "令和元年5月1日（2019年5月1日）" in text


# --------------------------------------------------------------------------- layout

def test_long_reasons_flow_onto_further_pages():
    long = "\n".join(f"{i}. 本件技術は、軍事転用のおそれが高い高度な製造技術に該当し、"
                     "提供先における管理体制について十分な確認が得られなかった。" * 3
                     for i in range(1, 60))
    pdf = render_notice(replace(SAMPLE, reasons=long))
    pages = pages_text(pdf)
    assert len(pages) > 1
    assert f"1 / {len(pages)}" in pages[0] and f"{len(pages)} / {len(pages)}" in pages[-1]
    assert all("INF-2026-0001" in p for p in pages)  # the number is on every page
    text = flat("".join(pages))
    assert "59. 本件技術は" in text and "許可申請を行うこと" in text
    assert "以上" in pages[-1]


def test_long_words_and_urls_wrap_inside_the_margins():
    url = "https://example.com/" + "very-long-path-segment/" * 15 + "?q=1"
    word = "x" * 400
    faces = notice._get_faces()
    lay = notice._Composer(faces)
    avail = lay.text_w - 7.4
    for text in (url, word, "あ" * 300, f"見出し {url} と {word} の後"):
        lines = lay.wrap(text, "", lay.BODY, avail)
        assert len(lines) > 1
        assert all(lay.width(line, "", lay.BODY) <= avail + 1e-6 for line in lines)
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    pdf = render_notice(replace(SAMPLE, reasons=url + "\n" + word))
    text = flat(pages_text(pdf)[0])
    assert url in text and word in text


def test_kinsoku_keeps_punctuation_off_line_starts_and_brackets_off_line_ends():
    lay = notice._Composer(notice._get_faces())
    text = ("「かぎかっこ」。、（丸括弧）、本件技術は、"
            "管理体制について十分な確認が得られなかった。") * 20
    for avail in (100.0, 123.4, 150.0):
        lines = lay.wrap(text, "", lay.BODY, avail)
        assert "".join(lines) == text
        for line in lines[1:]:
            assert line[0] not in "、。」）", line
        for line in lines[:-1]:
            assert line[-1] not in "「（", line


def test_english_wraps_between_words():
    lay = notice._Composer(notice._get_faces())
    text = "The technology carries a high risk of military diversion and must not be provided. " * 8
    lines = lay.wrap(text.strip(), "", lay.BODY, 120.0)
    assert len(lines) > 2
    words = set(text.split())
    for line in lines:
        assert line == line.strip()
        assert all(w in words for w in line.split()), line


# --------------------------------------------------------------------------- safety

def test_markup_in_user_text_is_drawn_literally():
    reasons = "<b>太字</b> <script>alert('x')</script> &amp; &lt;tag&gt; **md** __u__ {nb} \\n %PDF"
    pdf = render_notice(replace(SAMPLE, reasons=reasons, addressee_name="<i>株式会社</i> & Co."))
    text = flat(pages_text(pdf)[0])
    # Where a line breaks depends on the body font's widths; the text itself is what counts.
    assert reasons.replace(" ", "") in text.replace(" ", "")
    assert "<i>株式会社</i> & Co.　殿" in text


def test_characters_the_font_lacks_do_not_break_rendering():
    reasons = ("絵文字😀 孤立サロゲート\ud800 制御\x00\x07文字 ゼロ幅\u200bと\ufeff "
               "異体字葛\U000E0100 タブ\tあり\r\n改行")
    pdf = render_notice(replace(SAMPLE, reasons=reasons, destination="🇯🇵"))
    text = pages_text(pdf)[0]
    assert "絵文字〓" in text and "孤立サロゲート〓" in text
    assert "制御文字" in text and "ゼロ幅と" in text and "異体字葛" in text
    assert "改行" in text


def test_no_file_or_network_access_once_fonts_are_loaded(monkeypatch):
    notice.load_fonts()
    touched: list[str] = []

    def no_open(*args, **kwargs):
        touched.append(f"open{args[:1]}")
        raise AssertionError("the renderer opened a file")

    def no_socket(*args, **kwargs):
        touched.append("socket")
        raise AssertionError("the renderer opened a socket")

    monkeypatch.setattr(builtins, "open", no_open)
    monkeypatch.setattr(io, "open", no_open)
    monkeypatch.setattr(socket, "socket", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    assert render_notice(SAMPLE).startswith(b"%PDF")
    assert touched == []


def test_fonts_are_parsed_once_per_process():
    first = notice._get_faces()
    render_notice(SAMPLE)
    assert notice._get_faces() is first
    assert set(first) == {"", "B"}  # Mincho body, Plex Bold headings


# --------------------------------------------------------------------------- speed

def test_a_typical_notice_renders_quickly():
    notice.load_fonts()
    # CPU time, not wall time: the render is single-threaded, and other work on a loaded machine
    # stretches the wall clock without saying anything about the code.
    started = time.process_time()
    for _ in range(3):
        render_notice(SAMPLE)
    per_notice = (time.process_time() - started) / 3
    # ~0.2-0.3 s of CPU on the 2-core machine; the bound only catches a regression such as
    # re-parsing the fonts for every document.
    assert per_notice < 1.0, per_notice
