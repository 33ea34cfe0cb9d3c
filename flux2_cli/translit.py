"""Any prompt to ASCII for file names: ``雪の中の赤い狐`` → ``xue no zhong no chi i hu``.

anyascii does the transliteration: ISC-licensed (permissive, unlike Unidecode's GPL, which
would bind flux2's own licence), maintained, no dependencies, and it covers every script
(Arabic, Cyrillic, Greek, CJK, kana, Hangul, emoji as ``:fox:``). It is imported only when a
name is made. Without it, accents are folded and other scripts are dropped.
"""

from __future__ import annotations

import unicodedata

# Scripts written without spaces between words: each character's reading becomes a word.
_UNSPACED = (
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x2FA1F),  # CJK extensions B and later
)


def to_ascii(text: str) -> str:
    """``text`` in ASCII letters, digits and punctuation (words kept apart by spaces)."""
    try:
        from anyascii import anyascii
    except ImportError:  # pragma: no cover - a declared dependency; a broken install still names
        return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    if text.isascii():
        return text
    parts = []
    for char in text:
        if char.isascii():
            parts.append(char)
            continue
        ascii_text = anyascii(char)
        code = ord(char)
        if any(low <= code <= high for low, high in _UNSPACED):
            ascii_text = f" {ascii_text} "
        parts.append(ascii_text)
    return "".join(parts)
