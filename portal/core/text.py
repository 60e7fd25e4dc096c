r"""Characters that make text show other than it reads (issue 13, item 7).

A C0 or C1 control character, or a bidirectional formatting character — the embeddings and
overrides U+202A–U+202E, the isolates U+2066–U+2069, the marks U+200E, U+200F and U+061C —
and the line and paragraph separators U+2028/U+2029 and U+FEFF are invisible, and the bidi
ones reorder what follows them: ``photo\u202egnp.txt`` shows as "phototxt.png". File names
have them removed (``strip_controls``); names and codes a person types are refused with a
message that names the character (``control_problem``).
"""
from __future__ import annotations

import re

from portal.core.i18n import gettext as _

_FORMATTING = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff"
# Every control and formatting character, for single-line text (names, codes, file names).
CONTROLS = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMATTING}]")
# The same, but tab and line breaks, for text of several lines (an address).
CONTROLS_EXCEPT_LINES = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_FORMATTING}]")


def first_control(text: str | None, *, multiline: bool = False) -> str | None:
    """The first control or formatting character in ``text``, if any."""
    if not text:
        return None
    m = (CONTROLS_EXCEPT_LINES if multiline else CONTROLS).search(text)
    return m.group() if m else None


def strip_controls(text: str) -> str:
    return CONTROLS.sub("", text)


def control_problem(text: str | None, *, multiline: bool = False) -> str | None:
    """The message beside a field whose text holds a control or formatting character."""
    ch = first_control(text, multiline=multiline)
    if ch is None:
        return None
    code = f"U+{ord(ch):04X}"
    return _("This contains an invisible control or text-direction character (%(code)s), which can make the "
             "text show differently from what it is. Remove it and type the text again.", code=code)
