"""The designated technologies as first seeded (DESIGN §1). Used by the seeding migration
only: afterwards the catalogue is data kept by an administrator.

The first 15 are in force from 2024-12-30, when reporting began. The four later additions
carry their own date; LATER_ADDITIONS_FROM is the seeded value and an administrator corrects
an entry's date in the catalogue if the notice's amendment date differs.
"""
from datetime import date

SCHEME_START = date(2024, 12, 30)
LATER_ADDITIONS_FROM = date(2025, 10, 1)

TECHNOLOGIES = [
    ("T01", "積層セラミックコンデンサ (MLCC)", "Multilayer ceramic capacitors", SCHEME_START),
    ("T02", "SAW及びBAWフィルタ", "SAW and BAW filters", SCHEME_START),
    ("T03", "電解銅箔", "Electrolytic copper foil", SCHEME_START),
    ("T04", "誘電体フィルム", "Dielectric film", SCHEME_START),
    ("T05", "チタン酸バリウム", "Barium titanate", SCHEME_START),
    ("T06", "炭素繊維", "Carbon fibre", SCHEME_START),
    ("T07", "炭化ケイ素繊維", "Silicon carbide fibre", SCHEME_START),
    ("T08", "フォトレジスト", "Photoresist", SCHEME_START),
    ("T09", "非鉄金属ターゲット材", "Non-ferrous metal sputtering targets", SCHEME_START),
    ("T10", "走査型／透過型電子顕微鏡 (SEM／TEM)", "Scanning / transmission electron microscopes", SCHEME_START),
    ("T11", "磁気センサー", "Magnetic sensors", SCHEME_START),
    ("T12", "スポンジチタン", "Titanium sponge", SCHEME_START),
    ("T13", "正負極バインダ", "Cathode/anode binders", SCHEME_START),
    ("T14", "固体電解質", "Solid electrolytes", SCHEME_START),
    ("T15", "セパレータ製造装置", "Separator manufacturing equipment", SCHEME_START),
    ("T16", "量子ドット", "Quantum dots", LATER_ADDITIONS_FROM),
    ("T17", "TADF材料（有機EL次世代発光材料）", "TADF materials (next-generation OLED emitters)", LATER_ADDITIONS_FROM),
    ("T18", "位相差フィルム", "Retardation film", LATER_ADDITIONS_FROM),
    ("T19", "軟性内視鏡", "Flexible endoscopes", LATER_ADDITIONS_FROM),
]
