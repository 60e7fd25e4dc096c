"""Countries (ISO 3166-1 alpha-2) and currencies (ISO 4217) with their names in Japanese and
English, from Babel's CLDR data, so no hand-kept list drifts."""
from __future__ import annotations

import unicodedata
from functools import lru_cache

from babel import Locale
from babel.numbers import get_territory_currencies

# CLDR territory codes that are not ISO 3166-1 countries.
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "XA", "XB", "XK", "ZZ", "AC", "CP", "DG", "EA", "IC", "TA", "CQ"}


# How a Japanese reader says the names CLDR writes with kanji first, so that the list runs in
# the order of the reading (五十音順), as Japanese forms do: 中国 under ち, 韓国 under か,
# rather than every kanji name after ロシア in code-point order. Hong Kong and Macao are
# looked for as ホンコン and マカオ. A name CLDR adds with a kanji first and no reading here
# fails tests/test_filing_steps.py.
JA_READINGS = {
    "CN": "ちゅうごく", "CF": "ちゅうおうあふりかきょうわこく", "MO": "まかお", "HK": "ほんこん",
    "GF": "ふつりょうぎあな", "PF": "ふつりょうぽりねしあ", "TF": "ふつりょうきょくなんしょとう",
    "MK": "きたまけどにあ", "MP": "きたまりあなしょとう", "KP": "きたちょうせん",
    "ZA": "みなみあふりか", "SS": "みなみすーだん", "AQ": "なんきょく", "TW": "たいわん",
    "UM": "がっしゅうこくりょうゆうしょうりとう", "JP": "にほん", "TL": "ひがしてぃもーる",
    "AS": "べいりょうさもあ", "VI": "べいりょうばーじんしょとう", "IO": "えいりょういんどようちいき",
    "VG": "えいりょうばーじんしょとう", "EH": "にしさはら", "GQ": "せきどうぎにあ", "KR": "かんこく",
}
# The destination is where the technology goes abroad: Japan is never one (DESIGN §1).
HOME_COUNTRY = "JP"


def _reading_key(code: str, name: str, locale: str) -> tuple[str, str]:
    # Accents and voiced marks set aside first, so that Å sorts with A and ガ with カ.
    if locale != "ja":
        return (_bare(name).casefold(), name)
    # Katakana as hiragana.
    reading = JA_READINGS.get(code, name)
    hira = "".join(chr(ord(ch) - 0x60) if "ァ" <= ch <= "ヶ" else ch for ch in reading)
    return (_bare(hira), hira)


def _bare(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


@lru_cache(maxsize=4)
def countries(locale: str) -> list[tuple[str, str]]:
    names = Locale.parse(locale).territories
    codes = sorted(c for c in names if len(c) == 2 and c.isalpha() and c not in _NOT_COUNTRIES)
    en = Locale.parse("en").territories
    lang = str(Locale.parse(locale).language)
    return sorted(((c, names.get(c) or en.get(c, c)) for c in codes), key=lambda x: _reading_key(x[0], x[1], lang))


@lru_cache(maxsize=4)
def destination_countries(locale: str) -> list[tuple[str, str]]:
    return [(c, n) for c, n in countries(locale) if c != HOME_COUNTRY]


@lru_cache(maxsize=1)
def country_codes() -> frozenset[str]:
    return frozenset(c for c, _ in countries("en"))


@lru_cache(maxsize=4)
def _country_names(locale: str) -> dict[str, str]:
    return dict(countries(locale))


def country_name(code: str | None, locale: str) -> str:
    if not code:
        return ""
    return _country_names(locale).get(code, code)


# The currencies people actually contract in first; then every other ISO 4217 code.
_COMMON = ["JPY", "USD", "EUR", "CNY", "KRW", "TWD", "GBP", "SGD", "THB", "VND", "INR", "HKD", "CHF"]


@lru_cache(maxsize=4)
def currencies(locale: str) -> list[tuple[str, str]]:
    loc = Locale.parse(locale)
    all_codes = sorted(_current_currencies())
    ordered = _COMMON + [c for c in all_codes if c not in _COMMON]
    return [(c, f"{c} – {loc.currencies.get(c, c)}") for c in ordered if c in all_codes]


@lru_cache(maxsize=1)
def _current_currencies() -> frozenset[str]:
    """Legal tender somewhere today (CLDR also lists historic and fund codes; those are not offered)."""
    codes: set[str] = set()
    for territory in country_codes():
        codes.update(get_territory_currencies(territory, tender=True))
    return frozenset(codes)


@lru_cache(maxsize=1)
def currency_codes() -> frozenset[str]:
    return frozenset(c for c, _ in currencies("en"))
