"""The wire format: JSON Lines in, strict JSON Lines out.

One definition of the media type and its aliases for the serve app, the
handlers and the SageMaker configs. Output is strict JSON (RFC 8259): no NaN or
Infinity, no lone surrogates, so any client's parser reads every line.
"""

from __future__ import annotations

import json
from typing import Any

JSONLINES = "application/jsonlines"
#: Other spellings of JSON Lines that clients send; all mean JSONLINES.
JSONLINES_ALIASES = frozenset({JSONLINES, "application/jsonl", "application/x-jsonlines"})
ANY_MEDIA = frozenset({"*/*", "application/*"})


def media_type(header: str | None) -> str:
    """`application/jsonlines; charset=utf-8` -> `application/jsonlines`."""
    return (header or "").split(";", 1)[0].strip().lower()


def strict_line(value: Any) -> str:
    """One value as a strict JSON line; ValueError if it holds NaN, Infinity or a lone surrogate.

    ensure_ascii=False keeps text readable; encoding to UTF-8 then proves it has
    no lone surrogate, which strict parsers refuse even as a \\u escape.
    """
    line = json.dumps(value, ensure_ascii=False, allow_nan=False) + "\n"
    line.encode("utf-8")  # UnicodeEncodeError is a ValueError
    return line
