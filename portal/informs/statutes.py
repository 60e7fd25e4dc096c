"""The legal basis of a notice in English: "Article 55-8 of the Foreign Exchange and Foreign
Trade Act (外国為替及び外国貿易法)" for "外国為替及び外国貿易法第55条の8".

The officer writes the legal basis in Japanese. The statutes an inform rests on are few, so
citations of them are translated here, article by article (条, の, 項, 号); each statute's
Japanese title follows its English one in brackets, as the English notice should. A part this
module does not know is kept in Japanese, marked as untranslated, rather than guessed.
"""
from __future__ import annotations

import re

# Japanese title → English title (the Japanese Law Translation database's names).
STATUTES = {
    "外国為替及び外国貿易法": "the Foreign Exchange and Foreign Trade Act",
    "外国為替令": "the Foreign Exchange Order",
    "輸出貿易管理令": "the Export Trade Control Order",
    "貿易関係貿易外取引等に関する省令": "the Ministerial Order on Trade-Related Transactions outside Trade",
    "外国為替令別表の規定に基づき貨物又は技術を定める省令":
        "the Ministerial Order Specifying Goods and Technologies pursuant to the Appended Table of the "
        "Foreign Exchange Order",
    "行政手続法": "the Administrative Procedure Act",
}
ABBREVIATIONS = {"外為法": "外国為替及び外国貿易法", "外為令": "外国為替令", "輸出令": "輸出貿易管理令",
                 "貿易外省令": "貿易関係貿易外取引等に関する省令"}
_NUM = r"([0-9０-９]+)"
_CITE = re.compile(rf"第{_NUM}条(?:の{_NUM})?(?:の{_NUM})?(?:第{_NUM}項)?(?:第{_NUM}号)?")
_TITLES = sorted(list(STATUTES) + list(ABBREVIATIONS), key=len, reverse=True)
UNTRANSLATED = "[untranslated: {}]"


def _n(s: str | None) -> str:
    return s.translate(str.maketrans("０１２３４５６７８９", "0123456789")) if s else ""


def _article(m: re.Match[str]) -> str:
    art, sub1, sub2, para, item = (_n(g) for g in m.groups())
    text = "Article " + art + (f"-{sub1}" if sub1 else "") + (f"-{sub2}" if sub2 else "")
    if para:
        text += f"({para})"
    if item:
        text += f", item ({item})"
    return text


_PARA_ONLY = re.compile(rf"(?:第{_NUM}項)?(?:第{_NUM}号)?")


def _one(part: str, current: str | None, article: str) -> tuple[str, str | None, str]:
    """One citation ("外国為替令第18条の8第1項", or "第3項" continuing the previous article)."""
    title = next((t for t in _TITLES if part.startswith(t)), None)
    if title is not None:
        current = ABBREVIATIONS.get(title, title)
        rest = part[len(title):]
    else:
        rest = part
    m = _CITE.fullmatch(rest)
    if m is None and article and rest and _PARA_ONLY.fullmatch(rest):
        m = _CITE.fullmatch(article + rest)
    if current is None or (rest and m is None):
        return UNTRANSLATED.format(part), current, article
    name = f"{STATUTES[current]} ({current})"
    if m is None:
        return name[0].upper() + name[1:], current, ""
    head = re.match(rf"第{_NUM}条(?:の{_NUM})?(?:の{_NUM})?", m.group(0))
    return f"{_article(m)} of {name}", current, head.group(0) if head else ""


def legal_basis_en(text: str) -> str:
    """The English wording of a Japanese legal basis; English text is returned as it is."""
    text = (text or "").strip()
    if not text or text.isascii():
        return text
    # Titles hold 及び themselves: shield them before splitting the list of citations.
    shielded = text
    for n, title in enumerate(_TITLES):
        shielded = shielded.replace(title, f"\x00{n}\x00")
    out: list[str] = []
    current: str | None = None
    article = ""
    for part in re.split(r"[、,，]|及び|並びに|又は", shielded):
        part = re.sub(r"\x00(\d+)\x00", lambda m: _TITLES[int(m.group(1))], part).strip()
        if not part:
            continue
        english, current, article = _one(part, current, article)
        out.append(english)
    return "; ".join(out)
