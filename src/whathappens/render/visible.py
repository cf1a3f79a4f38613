"""Text that came from the peer, made safe to show: every control character becomes visible.

A header value, a status reason, a certificate's names, a DNS name or a body excerpt is the
peer's text, and a hostile peer chooses it. Written raw to a terminal, ``ESC [2J`` clears the
screen, ``ESC ]0;…BEL`` sets the window title, ``CR`` or ``BS`` overwrite what the report
already said; the 8-bit C1 forms (``0x9b`` CSI, ``0x9d`` OSC) do the same on terminals that
honour them. In any viewer, the Unicode bidi controls reorder the text a reader sees (Unicode
TR9; CVE-2021-42574, "Trojan Source") and the zero-width characters hide text inside it. So
every renderer shows these characters as escapes a reader can see — ``\\x1b``, ``\\x9b``,
``\\u202e`` — at the one place it turns journey values into text (:func:`visible_tree` or
:func:`visible`), and every JSON writer writes them as ``\\u`` escapes (:func:`escape_json`).

What counts as a control here (:data:`UNSAFE`):

* C0, U+0000–U+001F, and DEL, U+007F (ECMA-48 §5.2, §8.3): every one of them, TAB and LF
  included. A terminal report lays out its own lines; a peer's LF would start a line of the
  report the peer wrote, and a TAB is a cursor movement that looks like spaces (it cannot
  erase, but the reader should see that the peer sent a tab, not blanks). Documents whose
  layout a viewer does (the body excerpt in an HTML ``<pre>``) keep TAB, LF and CR with
  ``keep_layout=True``: there they are HTML's own whitespace and move no cursor.
* C1, U+0080–U+009F (ECMA-48 §5.3): CSI, OSC, DCS… in their 8-bit form. Header bytes that are
  not UTF-8 are read as ISO-8859-1, so a byte 0x9b arrives as U+009B.
* Bidi controls (Unicode TR9 §2): the embeddings and overrides U+202A–U+202E, the isolates
  U+2066–U+2069, the marks U+200E, U+200F and U+061C — they reorder what follows them.
  U+206A–U+206F (deprecated format characters) change shaping and mirroring, likewise shown.
* LINE and PARAGRAPH SEPARATOR, U+2028 and U+2029: line breaks a terminal or a JavaScript
  string may honour.
* Characters that hide text: ZERO WIDTH SPACE U+200B, WORD JOINER U+2060, the invisible
  operators U+2061–U+2064, the BOM / ZWNBSP U+FEFF, the interlinear annotation controls
  U+FFF9–U+FFFB (some renderers hide what sits between them) and the tag characters
  U+E0000–U+E007F ("ASCII smuggling": invisible copies of ASCII). ZWJ U+200D and ZWNJ U+200C
  are kept: Persian, the Indic scripts and emoji sequences need them, and they cannot reorder
  or hide other text.
* Lone surrogates, U+D800–U+DFFF: no text holds them; shown rather than failing to encode.

Ordinary text is returned unchanged, character for character. A backslash is not doubled, so
that normal text prints exactly as before: a peer can send the six characters ``\\x1b``,
which then look like an escaped ESC, but that misleads about nothing that matters and runs
nothing; the JSON keeps the exact value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

_CONTROLS = (
    "\x00-\x1f\x7f"  # C0 and DEL (ECMA-48 §5.2, §8.3)
    "\x80-\x9f"  # C1 (ECMA-48 §5.3)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi controls (Unicode TR9 §2)
    "\u206a-\u206f"  # deprecated format characters: shaping and mirroring
    "\u2028\u2029"  # line and paragraph separators
    "\u200b\u2060-\u2064\ufeff\ufff9-\ufffb"  # zero width, invisible, annotation
    "\U000e0000-\U000e007f"  # tag characters
    "\ud800-\udfff"  # lone surrogates
)
UNSAFE = re.compile(f"[{_CONTROLS}]")
# TAB, LF and CR kept: whitespace of a document whose viewer does the layout (HTML, the DOM).
_UNSAFE_BUT_LAYOUT = re.compile(f"(?![\t\n\r])[{_CONTROLS}]")
# In a JSON text, C0 can only be structural whitespace: json escapes C0 inside strings, as
# RFC 8259 §7 requires. Everything else unsafe can only be inside a string literal.
_UNSAFE_IN_JSON = re.compile(f"(?![\x00-\x1f])[{_CONTROLS}]")


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, keep_layout: bool = False) -> str:
    """``text`` with every control character (:data:`UNSAFE`) written as a visible escape as
    Python writes them — ``\\t``, ``\\n``, ``\\r``, ``\\x1b``, ``\\x9b``, ``\\u202e``,
    ``\\U000e0041`` —, anything else unchanged.
    ``keep_layout`` keeps TAB, LF and CR, for a viewer that lays them out as whitespace."""
    return (_UNSAFE_BUT_LAYOUT if keep_layout else UNSAFE).sub(_escape, text)


def visible_tree(value: Any, *, keep_layout: bool = False,
                 lines: Collection[str] = ()) -> Any:
    """A copy of a JSON-like value (a journey, an event) with every string, keys included,
    passed through :func:`visible`. The string under a key in ``lines`` keeps its LF — a
    multi-line text the renderer prints line by line itself — and shows everything else."""
    if isinstance(value, str):
        return visible(value, keep_layout=keep_layout)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            shown_key = visible(key, keep_layout=keep_layout) if isinstance(key, str) else key
            if isinstance(item, str) and key in lines:
                out[shown_key] = "\n".join(visible(line, keep_layout=keep_layout)
                                           for line in item.split("\n"))
            else:
                out[shown_key] = visible_tree(item, keep_layout=keep_layout, lines=lines)
        return out
    if isinstance(value, (list, tuple)):
        return [visible_tree(item, keep_layout=keep_layout, lines=lines) for item in value]
    return value


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # RFC 8259 §7: outside the BMP, a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def escape_json(document: str) -> str:
    """A JSON text (``json.dumps(..., ensure_ascii=False)``) with DEL, C1, the bidi, separator
    and invisible characters and lone surrogates written as ``\\u`` escapes, so that
    ``cat journey.json`` shows them instead of obeying them. The same JSON values: these
    characters can only stand inside string literals, where an escape means the character
    itself (RFC 8259 §7), and none of them is part of an escape sequence."""
    return _UNSAFE_IN_JSON.sub(_json_escape, document)
