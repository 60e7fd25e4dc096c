"""The official inform notice (インフォーム通知) as a PDF.

`render_notice(data, lang)` turns a `NoticeData` into PDF bytes. The module has no Flask and no
database in it: the issuing service collects the data, calls this once at issuance and stores the
bytes (encrypted, with their SHA-256), so the company and auditors always receive the same file.

Properties the rest of the portal relies on:

* **Deterministic.** The same data and language give byte-identical PDFs: the creation date is
  the issue date at 00:00 JST, the document ID is a hash of the content, the font subset tag is
  fixed, and nothing reads the clock or a random source.
* **Fonts embedded.** The body in BIZ UD Mincho (明朝), headings in IBM Plex Sans JP Bold (both
  OFL, in ``fonts/`` beside this file with their licences), each embedded as a TrueType subset
  (``/FontFile2``); no standard-14 or system font is referenced, so the notice prints the same
  everywhere. Only the two font files are ever read.
* **Room for the signature.** ``compose`` leaves an area at the end of the last page and says
  where, and draws in it who signs and when; the issuing service places the signature field there.
* **Text is text.** User-supplied strings are drawn glyph by glyph with ``FPDF.text``: no markup,
  markdown or ``{nb}`` alias is interpreted, so ``<b>`` or ``**x**`` appear literally.
  Characters the font lacks are drawn as 〓 (geta, the customary mark for an unavailable
  character) instead of failing; control and format characters are dropped.
* **Layout is ours.** Lines are broken here, not by the PDF library: Latin words wrap at spaces,
  Japanese wraps between characters with basic kinsoku (no 、。）」 at a line start, no （「 at a
  line end), words or URLs longer than a line are split, and text flows onto further pages.
  Every page carries the notice number and "page / pages" in its footer.
* **Fast.** Parsing a 3 MB WOFF font takes ~0.4 s, so each face is parsed once per process
  and cached; a render then only subsets the glyphs it uses.
"""
from __future__ import annotations

import copy
import threading
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

__all__ = ["NoticeData", "Rendered", "render_notice", "compose", "load_fonts", "era_year",
           "japanese_date", "english_date", "LANGS", "APPEAL_DEFAULT"]

LANGS = ("ja", "en")
JST = timezone(timedelta(hours=9), "JST")
FONT_DIR = Path(__file__).resolve().parent / "fonts"
# Face key → (file, fpdf2 family, fpdf2 style). The body is set in 明朝 (BIZ UD Mincho), as
# official documents are, headings in Plex Sans JP Bold. Two faces only: every face embedded
# costs each document a subsetting pass over a multi-megabyte font.
FONTS = {"": ("BIZUDMincho-Regular.woff", "minchojp", ""),
         "B": ("IBMPlexSansJP-Bold.woff", "plexjp", "B")}
FONT_FILES = {key: f for key, (f, _fam, _st) in FONTS.items()}


@dataclass(frozen=True)
class NoticeData:
    number: str            # "INF-2026-0001"
    issued_on: date        # the issue date (JST)
    addressee_name: str    # company name
    corporate_number: str  # 法人番号, 13 digits
    addressee_address: str
    report_reference: str  # "TTR-2026-000012"
    technology_ja: str
    technology_en: str
    destination: str       # country name in the notice language
    legal_basis: str       # e.g. "外国為替及び外国貿易法第55条の8、外国為替令第18条の8第1項"
    reasons: str           # company-facing reasons (multi-line)
    conditions: str        # conditions (multi-line, may be empty)
    issuer: str            # e.g. "経済産業大臣" / "Minister of Economy, Trade and Industry"
    office: str = ""       # 担当課: the issuing office, in the notice language
    contact: str = ""      # 連絡先: how to reach it (telephone, address)
    appeal: str = ""       # 教示: how the decision can be challenged; empty: APPEAL_DEFAULT


# --------------------------------------------------------------------------- dates

# (first day, name), newest first. Only the eras a notice can carry: the portal did not exist
# before Heisei, so an earlier date is a data error rather than something to render.
_ERAS = ((date(2019, 5, 1), "令和"), (date(1989, 1, 8), "平成"))
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")


def era_year(d: date) -> tuple[str, int]:
    """The Japanese era and the year within it.

    2019-04-30 → ("平成", 31), 2019-05-01 → ("令和", 1)."""
    d = date(d.year, d.month, d.day)
    for start, name in _ERAS:
        if d >= start:
            return name, d.year - start.year + 1
    raise ValueError(f"{d.isoformat()} is before the Heisei era")


def japanese_date(d: date, *, western: bool = True) -> str:
    """令和8年11月22日（2026年11月22日）; the first year of an era is 元年."""
    era, year = era_year(d)
    text = f"{era}{'元' if year == 1 else year}年{d.month}月{d.day}日"
    if western:
        text += f"（{d.year}年{d.month}月{d.day}日）"
    return text


def english_date(d: date) -> str:
    """22 November 2026 (locale-independent)."""
    return f"{d.day} {_MONTHS_EN[d.month - 1]} {d.year}"


# --------------------------------------------------------------------------- fonts

@dataclass(frozen=True)
class _Face:
    sfnt: bytes              # the font decompressed from WOFF, layout tables stripped
    base: TTFFont            # fpdf2's metrics for it, built once; cloned per document
    widths: dict[int, int]   # code point → advance in 1/1000 em
    cmap: frozenset[int]     # code points the face can draw


_faces: dict[str, _Face] | None = None
_faces_lock = threading.Lock()
# Tables fpdf2 drops from the subset anyway (it does no shaping here); removing them once
# keeps the per-document subsetting cheap.
_UNUSED_TABLES = ("GSUB", "GPOS", "GDEF", "BASE", "meta", "DSIG", "vhea", "vmtx")


def _load_face(path: Path, style: str) -> _Face:
    font = TTFont(str(path), recalcTimestamp=False)
    font.flavor = None  # WOFF → plain SFNT, which is what a PDF embeds
    for tag in _UNUSED_TABLES:
        if tag in font:
            del font[tag]
    # One Unicode cmap subtable is all fpdf2 reads; every document decompiles what is left, so
    # the duplicates (BMP-only, platform 0) would only cost time.
    cmap = font["cmap"]
    best = [t for t in cmap.tables if (t.platformID, t.platEncID) == (3, 10)] or \
        [t for t in cmap.tables if (t.platformID, t.platEncID) == (3, 1)]
    if best:
        cmap.tables = best[:1]
    buf = BytesIO()
    font.save(buf)
    font.close()
    sfnt = buf.getvalue()
    _file, family, fstyle = FONTS[style]
    base = TTFFont(FPDF(), BytesIO(sfnt), family + fstyle, fstyle)
    cmap = frozenset(base.cmap)
    base.ttfont.close()
    base.ttfont = None  # each document gets its own; don't keep the decompiled tables around
    base.ttffile = None
    return _Face(sfnt=sfnt, base=base, widths={cp: int(base.cw[cp]) for cp in cmap}, cmap=cmap)


def load_fonts() -> None:
    """Parse and cache both faces now (e.g. at app start) instead of on the first render."""
    _get_faces()


def _get_faces() -> dict[str, _Face]:
    """Both faces, parsed once per process (thread-safe)."""
    global _faces
    if _faces is None:
        with _faces_lock:
            if _faces is None:
                _faces = {style: _load_face(FONT_DIR / name, style)
                          for style, name in FONT_FILES.items()}
    return _faces


def _attach_font(pdf: FPDF, face: _Face, style: str) -> None:
    """Register a per-document copy of a cached face with `pdf` (what add_font would do, minus
    re-parsing the file). Everything the output step mutates — the subset, the descriptor, the
    fontTools object it subsets in place — is fresh; the read-only metrics are shared."""
    base = face.base
    font = TTFFont.__new__(TTFFont)
    for name in TTFFont.__slots__:
        if hasattr(base, name):
            setattr(font, name, getattr(base, name))
    font.i = len(pdf.fonts) + 1
    font.ttffile = BytesIO(face.sfnt)
    font.ttfont = TTFont(font.ttffile, recalcTimestamp=False, lazy=True)
    font.cw = base.cw.copy()
    font.desc = copy.copy(base.desc)  # output() sets its font name, file and object id
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None
    font.subset = SubsetMap(font)
    _file, family, fstyle = FONTS[style]
    pdf.fonts[family + fstyle] = font


# --------------------------------------------------------------------------- text

MISSING = "〓"  # U+3013 GETA MARK: stands for a character the font cannot draw
_NEWLINES = {"\x0b", "\x0c", "\x85", "\u2028", "\u2029"}
# Kinsoku (JIS X 4051, simplified): characters that may not start a line / end a line.
_NO_START = frozenset(
    "、。，．,.:;!?)]}）］｝〕〉》」』】〙〗〟’”｠»・：；！？‐゠–〜～ー々〻ゝゞヽヾ"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ")
_NO_END = frozenset("([{（［｛〔〈《「『【〘〖〝‘“｟«")


def _clean(text: str, cmap: frozenset[int]) -> str:
    """Make any string drawable: NFC, one kind of newline, tabs as spaces, control/format
    characters and variation selectors dropped, anything the font lacks replaced by 〓."""
    text = unicodedata.normalize("NFC", str(text)).replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    for ch in text:
        if ch == "\n" or ch in _NEWLINES:
            out.append("\n")
        elif ch == "\t":
            out.append("    ")
        else:
            cp = ord(ch)
            cat = unicodedata.category(ch)
            if cat in ("Cc", "Cf") or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF:
                continue
            if cp in cmap:
                out.append(ch)
            elif cat == "Zs":
                out.append(" ")
            else:
                out.append(MISSING)
    return "".join(out)


def _units(para: str) -> list[tuple[str, bool]]:
    """Split a paragraph into unbreakable units (text, is_space). Runs of narrow characters
    (Latin words, numbers, references) stay whole; wide (CJK) characters stand alone, except
    that kinsoku glues a no-start character to what precedes it and a no-end one to what follows."""
    tokens: list[tuple[str, str]] = []
    for ch in para:
        kind = "s" if ch == " " else ("c" if unicodedata.east_asian_width(ch) in "WF" else "w")
        if tokens and kind != "c" and tokens[-1][1] == kind:
            tokens[-1] = (tokens[-1][0] + ch, kind)
        else:
            tokens.append((ch, kind))
    units: list[tuple[str, bool]] = []
    glue_next = False
    for tok, kind in tokens:
        if kind == "s":
            units.append((tok, True))
            glue_next = False
            continue
        if units and not units[-1][1] and (glue_next or tok[0] in _NO_START):
            units[-1] = (units[-1][0] + tok, False)
        else:
            units.append((tok, False))
        glue_next = tok[-1] in _NO_END
    return units


class _Composer:
    """Lays text out into pages of positioned lines, then draws them. Pagination is done here,
    so the total page count is known when footers are drawn."""

    PAGE_W, PAGE_H = 210.0, 297.0
    LEFT, RIGHT, TOP, BOTTOM = 25.0, 25.0, 25.0, 25.0
    BODY = 10.5  # pt
    LINE = 1.6  # line height, in multiples of the font size

    def __init__(self, faces: dict[str, _Face]):
        self.faces = faces
        self.text_w = self.PAGE_W - self.LEFT - self.RIGHT
        self.limit = self.PAGE_H - self.BOTTOM
        self.pages: list[list[tuple[float, float, str, float, str]]] = [[]]
        self.frames: list[tuple[int, float, float, float, float]] = []  # (page, x, y, w, h) in mm
        self.y = self.TOP

    # measuring -------------------------------------------------------------
    def width(self, s: str, style: str, size: float) -> float:
        face = self.faces[style]
        get = face.widths.get
        units = sum(get(ord(ch), 1000) for ch in s)
        return units * size / 1000 * 25.4 / 72

    def wrap(self, text: str, style: str, size: float, avail: float) -> list[str]:
        lines: list[str] = []
        eps = 1e-6
        for para in text.split("\n"):
            out: list[str] = []
            cur, cur_w = "", 0.0
            for unit, is_space in _units(para):
                w = self.width(unit, style, size)
                if is_space:
                    if cur or not out:  # keep indentation on a paragraph's first line only
                        cur, cur_w = cur + unit, cur_w + w
                    continue
                if cur_w + w <= avail + eps:
                    cur, cur_w = cur + unit, cur_w + w
                    continue
                if w > avail + eps:  # longer than a whole line: split it character by character
                    for ch in unit:
                        cw = self.width(ch, style, size)
                        if cur_w + cw > avail + eps and cur.strip():
                            out.append(cur.rstrip(" "))
                            cur, cur_w = "", 0.0
                        cur, cur_w = cur + ch, cur_w + cw
                    continue
                if cur.strip():
                    out.append(cur.rstrip(" "))
                cur, cur_w = unit, w
            out.append(cur.rstrip(" "))
            lines.extend(out)
        return lines

    # placing ---------------------------------------------------------------
    def line_h(self, size: float) -> float:
        return size * self.LINE * 25.4 / 72

    def new_page(self) -> None:
        self.pages.append([])
        self.y = self.TOP

    def need(self, h: float) -> None:
        """Start a new page unless `h` mm still fit on this one."""
        if self.y + h > self.limit + 1e-6 and self.y > self.TOP:
            self.new_page()

    def gap(self, mm: float) -> None:
        if self.y > self.TOP:
            self.y += mm

    def height(self, text: str, *, style: str = "", size: float | None = None,
               indent: float = 0.0) -> float:
        size = size or self.BODY
        return len(self.wrap(text, style, size, self.text_w - indent)) * self.line_h(size)

    def block(self, text: str, *, style: str = "", size: float | None = None, indent: float = 0.0,
              align: str = "L", width: float | None = None) -> None:
        size = size or self.BODY
        avail = (width or self.text_w) - indent
        lh = self.line_h(size)
        for line in self.wrap(text, style, size, avail):
            self.need(lh)
            if align == "R":
                x = self.LEFT + self.text_w - self.width(line, style, size)
            elif align == "C":
                x = self.LEFT + (self.text_w - self.width(line, style, size)) / 2
            else:
                x = self.LEFT + indent
            # baseline: centre the em box in the line, then drop by the ascent (~0.88 em for Plex)
            baseline = self.y + (lh - size * 25.4 / 72) / 2 + size * 0.88 * 25.4 / 72
            if line:
                self.pages[-1].append((x, baseline, style, size, line))
            self.y += lh

    # drawing ---------------------------------------------------------------
    def draw(self, pdf: FPDF, footer_left: str) -> None:
        total = len(self.pages)
        small = 8.5
        for n, page in enumerate(self.pages, start=1):
            pdf.add_page()
            pdf.set_text_color(0, 0, 0)
            for x, baseline, style, size, line in page:
                pdf.set_font(FONTS[style][1], FONTS[style][2], size)
                pdf.text(x, baseline, line)
            for fn, x, y, w, h in self.frames:
                if fn == n - 1:
                    pdf.set_draw_color(40, 40, 40)
                    pdf.set_line_width(0.3)
                    pdf.rect(x, y, w, h)
            pdf.set_text_color(90, 90, 90)
            pdf.set_font(FONTS[""][1], FONTS[""][2], small)
            fy = self.PAGE_H - 13.0
            pdf.text(self.LEFT, fy, footer_left)
            folio = f"{n} / {total}"
            pdf.text(self.LEFT + self.text_w - self.width(folio, "", small), fy, folio)
            pdf.set_draw_color(170, 170, 170)
            pdf.set_line_width(0.2)
            pdf.line(self.LEFT, fy - 4.5, self.LEFT + self.text_w, fy - 4.5)


# --------------------------------------------------------------------------- wording

_JA = {
    "title": ("インフォーム通知（許可申請を要する旨の通知）", ""),
    "no": "文書番号　{}",
    "to": "{}　殿",
    "corp": "法人番号　{}",
    "intro": ("　貴社から提出された事前報告（受付番号　{ref}）に係る技術の提供について、"
              "{basis}の規定に基づき、当該取引は許可を要するものであることを下記のとおり通知します。"),
    "ki": "記",
    "items": ("事前報告の受付番号", "対象技術", "提供先の国又は地域", "根拠法令", "理由",
              "条件", "求める措置"),
    "tech_alt": "（英文名称：{}）",
    "none": "なし",
    "action": ("本件取引は、外国為替及び外国貿易法に基づく許可を要するものとなりました。"
               "本件取引を行おうとする場合は、その実行前に、同法に基づく許可申請を行うこと。"
               "許可を受けるまでの間、本件技術の提供を行ってはなりません。"),
    "end": "以上",
    "ref": "事前報告受付番号　{}",
    "appeal": "（教示）",
    "office": "担当課　{}",
    "contact": "連絡先　{}",
    "heading_fmt": "{n}．{label}",
}
_EN = {
    "title": ("Inform Notice", "(Notification that a Licence Application Is Required)"),
    "no": "No. {}",
    "to": "To: {}",
    "corp": "Corporate Number: {}",
    "intro": ("With regard to the provision of the technology described below, which is the "
              "subject of the prior report submitted by your company (reference {ref}), notice "
              "is hereby given under {basis} that the transaction requires a licence, as follows."),
    "ki": "Particulars",
    "items": ("Prior report reference", "Technology", "Destination", "Legal basis", "Reasons",
              "Conditions", "Required action"),
    "tech_alt": "(Japanese name: {})",
    "none": "None",
    "action": ("This transaction now requires a licence under the Foreign Exchange and Foreign "
               "Trade Act. Before the transaction proceeds, your company must apply for a licence "
               "under the Act. The technology must not be provided until the licence is granted."),
    "end": "End of notice",
    "ref": "Prior report reference: {}",
    "appeal": "Means of redress",
    "office": "Issuing office: {}",
    "contact": "Contact: {}",
    "heading_fmt": "{n}. {label}",
}


def _validate(data: NoticeData, lang: str) -> None:
    if lang not in LANGS:
        raise ValueError(f"unsupported notice language {lang!r}; expected one of {LANGS}")
    if not isinstance(data, NoticeData):
        raise TypeError("data must be a NoticeData")
    if not isinstance(data.issued_on, date):
        raise TypeError("issued_on must be a date")
    corp = str(data.corporate_number)
    if len(corp) != 13 or not corp.isascii() or not corp.isdigit():
        raise ValueError("corporate_number must be 13 digits")
    for name in ("number", "addressee_name", "report_reference", "destination", "legal_basis",
                 "reasons", "issuer"):
        if not str(getattr(data, name) or "").strip():
            raise ValueError(f"{name} must not be empty")
    if not (str(data.technology_ja or "").strip() or str(data.technology_en or "").strip()):
        raise ValueError("technology_ja or technology_en must be given")


def outline(data: NoticeData, lang: str = "ja") -> tuple[str, str, list[tuple[str, str]]]:
    """The notice's title, opening paragraph and numbered sections as text, worded as the PDF
    words them: what a page shows of a notice before it is issued."""
    t = _JA if lang == "ja" else _EN
    tech_main, tech_alt = str(data.technology_ja or ""), str(data.technology_en or "")
    if lang == "en":
        tech_main, tech_alt = tech_alt, tech_main
    if not tech_main:
        tech_main, tech_alt = tech_alt, ""
    texts = (data.report_reference, tech_main + ("\n" + t["tech_alt"].format(tech_alt) if tech_alt else ""),
             data.destination, data.legal_basis, data.reasons, data.conditions or t["none"], t["action"])
    sections = [(t["heading_fmt"].format(n=n, label=label), str(text or ""))
                for n, (label, text) in enumerate(zip(t["items"], texts, strict=True), start=1)]
    title = " ".join(x for x in t["title"] if x)
    return title, t["intro"].format(ref=data.report_reference, basis=data.legal_basis), sections


# 教示 (行政不服審査法第82条, 行政事件訴訟法第46条): the default wording; the portal's settings
# (PORTAL_NOTICE_APPEAL_JA / _EN) replace it where the ministry's legal office words it otherwise.
APPEAL_DEFAULT = {
    "ja": ("1　この通知に不服がある場合は、この通知があったことを知った日の翌日から起算して3か月以内に、"
           "行政不服審査法（平成26年法律第68号）の規定により、経済産業大臣に対して審査請求をすることができます。\n"
           "2　この通知の取消しの訴えは、この通知があったことを知った日の翌日から起算して6か月以内に、"
           "国を被告として（訴訟において国を代表する者は法務大臣となります。）提起することができます"
           "（行政事件訴訟法（昭和37年法律第139号）第14条第1項）。ただし、上記1の審査請求をした場合には、"
           "当該審査請求に対する裁決があったことを知った日の翌日から起算して6か月以内に提起することができます。"),
    "en": ("1. If your company objects to this notice, it may file a request for review with the Minister of "
           "Economy, Trade and Industry under the Administrative Complaint Review Act (行政不服審査法, Act No. 68 of "
           "2014) within three months from the day after the day on which it learned of this notice.\n"
           "2. An action for the revocation of this notice may be filed against the State (represented in the "
           "action by the Minister of Justice) within six months from the day after the day on which your company "
           "learned of this notice (Article 14(1) of the Administrative Case Litigation Act (行政事件訴訟法, Act No. "
           "139 of 1962)). If a request for review under 1 is filed, the action may be filed within six months from "
           "the day after the day on which your company learned of the decision on that request.\n"
           "This English notice is a translation; the Japanese notice is the official one."),
}
# The area left for the visible signature, bottom right after the last text (mm).
SIGNATURE_W, SIGNATURE_H = 82.0, 24.0
PT = 72 / 25.4


@dataclass(frozen=True)
class Rendered:
    """A rendered notice and where its signature goes: ``page`` (0-based) and ``box`` in PDF
    points from the page's lower-left corner (x1, y1, x2, y2)."""

    pdf: bytes
    page: int
    box: tuple[float, float, float, float]


def render_notice(data: NoticeData, lang: str = "ja") -> bytes:
    """The official notice as PDF bytes: Japanese by default, English with lang="en"."""
    return compose(data, lang).pdf


def _drawable(faces: dict[str, _Face]) -> frozenset[int]:
    out: frozenset[int] | None = None
    for face in faces.values():
        out = face.cmap if out is None else out & face.cmap
    return out or frozenset()


def compose(data: NoticeData, lang: str = "ja", *, signature: list[str] | None = None) -> Rendered:
    """The notice, with an area at the end of its last page for the signature: framed, with
    ``signature``'s lines (who signs, when) when given, empty in a preview. The signature field
    is placed over it, so what it shows is page content, covered by the signature itself."""
    _validate(data, lang)
    faces = _get_faces()
    cmap = _drawable(faces)
    t = _JA if lang == "ja" else _EN

    def c(value: object) -> str:
        return _clean(str(value or ""), cmap).strip("\n")

    issued = date(data.issued_on.year, data.issued_on.month, data.issued_on.day)
    number = c(data.number)
    tech_main, tech_alt = (c(data.technology_ja), c(data.technology_en))
    if lang == "en":
        tech_main, tech_alt = tech_alt, tech_main
    if not tech_main:
        tech_main, tech_alt = tech_alt, ""

    lay = _Composer(faces)
    body = lay.BODY
    lh = lay.line_h(body)
    # Heading block: number and date top right, addressee left, issuer right.
    lay.block(t["no"].format(number), align="R")
    lay.block(t["ref"].format(c(data.report_reference)), align="R")
    lay.block(japanese_date(issued) if lang == "ja" else english_date(issued), align="R")
    lay.gap(lh * 0.8)
    address, name = c(data.addressee_address), t["to"].format(c(data.addressee_name))
    if lang == "ja":  # Japanese order: address, then the addressee 殿
        if address:
            lay.block(address)
        lay.block(name, size=body + 1.5)
    else:
        lay.block(name, size=body + 1.5)
        if address:
            lay.block(address)
    lay.block(t["corp"].format(c(data.corporate_number)))
    lay.gap(lh * 0.6)
    lay.block(c(data.issuer), align="R", size=body + 1)
    lay.gap(lh * 1.2)
    title, subtitle = t["title"]
    lay.block(title, style="B", size=15, align="C")
    if subtitle:
        lay.block(subtitle, style="B", size=body + 1, align="C")
    lay.gap(lh * 0.8)
    lay.block(t["intro"].format(ref=c(data.report_reference), basis=c(data.legal_basis)))
    lay.gap(lh * 0.5)
    lay.block(t["ki"], align="C")
    lay.gap(lh * 0.5)

    sections = (
        c(data.report_reference),
        tech_main + ("\n" + t["tech_alt"].format(tech_alt) if tech_alt else ""),
        c(data.destination),
        c(data.legal_basis),
        c(data.reasons),
        c(data.conditions) or t["none"],
        t["action"],
    )
    indent = 2 * body * 25.4 / 72  # two ems, as in a Japanese official document
    last = len(sections)
    for n, (label, text) in enumerate(zip(t["items"], sections, strict=True), start=1):
        heading = t["heading_fmt"].format(n=n, label=label)
        if n == last:  # the instruction and the closing 以上 stay together, with their heading
            lay.need(lh + lay.height(text, indent=indent) + lh * 0.6 + lh)
        else:  # never leave a heading alone at the foot of a page
            lay.need(lh * 2)
        lay.block(heading, style="B")
        lay.block(text, indent=indent)
        lay.gap(lh * 0.3)
    lay.gap(lh * 0.3)
    lay.block(t["end"], align="R")
    lay.gap(lh * 0.8)
    appeal = c(data.appeal) or APPEAL_DEFAULT[lang]
    lay.need(lh * 3)
    lay.block(t["appeal"], style="B")
    lay.block(appeal, indent=indent / 2)
    office, contact = c(data.office), c(data.contact)
    if office or contact:
        lay.gap(lh * 0.8)
        block = "\n".join(x for x in (t["office"].format(office) if office else "",
                                      t["contact"].format(contact) if contact else "") if x)
        lay.need(lay.height(block, indent=lay.text_w * 0.4))
        lay.block(block, indent=lay.text_w * 0.4)
    lay.gap(lh * 0.8)
    lay.need(SIGNATURE_H)
    sig_page, sig_top = len(lay.pages) - 1, lay.y
    if signature:
        x0 = lay.LEFT + lay.text_w - SIGNATURE_W
        lay.frames.append((sig_page, x0 + 0.5, sig_top + 0.5, SIGNATURE_W - 1, SIGNATURE_H - 1))
        size, y = 8.5, sig_top + 2.5
        for n, line in enumerate(signature):
            style = "B" if n == 0 else ""
            text = c(line).replace("\n", " ")
            while text and lay.width(text, style, size) > SIGNATURE_W - 5:
                text = text[:-1]  # the area is fixed: an over-long line is cut rather than overflowing
            y += size * 1.45 / PT
            lay.pages[sig_page].append((x0 + 2.5, y, style, size, text))
    lay.y += SIGNATURE_H

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.alias_nb_pages(None)  # no "{nb}" substitution in anything we draw
    pdf.set_auto_page_break(False)  # _Composer paginates
    pdf.set_margins(lay.LEFT, lay.TOP, lay.RIGHT)
    pdf.set_creation_date(datetime(issued.year, issued.month, issued.day, tzinfo=JST))
    pdf.set_lang("ja-JP" if lang == "ja" else "en")
    title = "インフォーム通知" if lang == "ja" else "Inform Notice"
    pdf.set_title(f"{title} {number}")
    pdf.set_author(c(data.issuer).replace("\n", " "))
    pdf.set_creator("ttr-portal")
    for style, face in faces.items():
        _attach_font(pdf, face, style)
    lay.draw(pdf, number.replace("\n", " "))
    x1 = lay.LEFT + lay.text_w - SIGNATURE_W
    y1 = lay.PAGE_H - sig_top - SIGNATURE_H
    box = (round(x1 * PT, 2), round(y1 * PT, 2), round((x1 + SIGNATURE_W) * PT, 2),
           round((y1 + SIGNATURE_H) * PT, 2))
    return Rendered(bytes(pdf.output()), sig_page, box)

