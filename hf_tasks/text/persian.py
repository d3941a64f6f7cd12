"""Persian text normalisation, shared by preprocessing and the QA metric.

Persian text from the web mixes Arabic and Persian code points for the same letter (ي/ی, ك/ک),
three digit systems, optional diacritics and invisible joiners. Two strings a reader sees as equal
should compare equal after `normalize_persian`.
"""

from __future__ import annotations

import unicodedata

# Bump when `normalize_persian` changes what it produces for the same tables (a test holds its source).
NORMALIZATION_VERSION = 1

_LETTERS = {
    "\u064a": "\u06cc",  # ARABIC YEH → FARSI YEH
    "\u0649": "\u06cc",  # ALEF MAKSURA → FARSI YEH
    "\u0643": "\u06a9",  # ARABIC KAF → KEHEH
    "\u0629": "\u0647",  # TEH MARBUTA → HEH
    "\u06c0": "\u0647",  # HEH WITH YEH ABOVE (ezafe) → HEH
    "\u06c2": "\u0647",  # HEH GOAL WITH HAMZA ABOVE → HEH
    "\u06c1": "\u0647",  # HEH GOAL → HEH
    "\u06d5": "\u0647",  # AE → HEH
    "\u06be": "\u0647",  # HEH DOACHASHMEE → HEH
    "\u0623": "\u0627",  # ALEF WITH HAMZA ABOVE → ALEF
    "\u0625": "\u0627",  # ALEF WITH HAMZA BELOW → ALEF
    "\u0671": "\u0627",  # ALEF WASLA → ALEF
    "\u0624": "\u0648",  # WAW WITH HAMZA ABOVE → WAW
}

_DIGITS = {chr(0x0660 + value): str(value) for value in range(10)}  # Arabic-Indic
_DIGITS.update({chr(0x06F0 + value): str(value) for value in range(10)})  # Extended (Persian)

_PUNCTUATION = {
    "\u060c": ",",  # ARABIC COMMA
    "\u061b": ";",  # ARABIC SEMICOLON
    "\u061f": "?",  # ARABIC QUESTION MARK
    "\u00ab": '"',  # «
    "\u00bb": '"',  # »
    "\u066a": "%",  # ARABIC PERCENT SIGN
    "\u066b": ".",  # ARABIC DECIMAL SEPARATOR
    "\u066c": ",",  # ARABIC THOUSANDS SEPARATOR
    "\u06d4": ".",  # ARABIC FULL STOP
}

_DROPPED = [chr(code) for code in range(0x064B, 0x0660)]  # harakat, tanwin, shadda, sukun, ...
_DROPPED += [
    "\u0670",  # SUPERSCRIPT ALEF
    "\u0640",  # TATWEEL
    "\u200b", "\u200c", "\u200d",  # zero-width space, non-joiner, joiner
    "\u200e", "\u200f", "\u061c",  # left-to-right, right-to-left and Arabic letter marks
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",  # bidi embeddings and overrides
    "\u2066", "\u2067", "\u2068", "\u2069",  # bidi isolates
    "\u2060", "\ufeff", "\u00ad",  # word joiner, byte-order mark, soft hyphen
]

_TABLE = str.maketrans({**_LETTERS, **_DIGITS, **_PUNCTUATION, **{char: None for char in _DROPPED}})


def normalize_persian(text: str) -> str:
    """Unify letter variants, digits (to ASCII), punctuation (to ASCII); drop diacritics and joiners.

    آ is kept. The result can be shorter than the input, so character offsets into the original
    (e.g. SQuAD `answer_start`) do not carry over: normalise before computing offsets.
    """
    # NFKC first folds Arabic presentation forms (ﻋﻠﻲ → علي), common in scraped or PDF text, and
    # composes ا + madda into آ before the diacritics (madda among them) are dropped.
    return unicodedata.normalize("NFKC", text).translate(_TABLE)


def normalization_key() -> tuple:
    """Everything `normalize_persian` depends on, for caches of what it produced: its version, the
    translation table and the Unicode database behind NFKC."""
    return NORMALIZATION_VERSION, unicodedata.unidata_version, sorted(_TABLE.items())
