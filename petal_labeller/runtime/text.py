"""A paper record as the model reads it: validated fields, then one text string."""

from __future__ import annotations

from typing import Any

from petal_labeller.papers import PaperError, has_visible, text_field, venue_field

# Tokenizing a multi-megabyte abstract only to truncate it wastes seconds; no
# word-piece is shorter than one character, so this many characters always
# covers max_length tokens.
CHARS_PER_TOKEN_BOUND = 16
#: An echoed paper_id longer than this is not an id.
MAX_PAPER_ID_CHARS = 256


def validate_paper(record: Any) -> dict[str, Any]:
    """Check one paper's fields and return it; raise PaperError naming the bad field.

    The import format's own field checks (papers.py), so a paper the store holds
    always labels; unlike import, a title is optional when there is an abstract.
    """
    if not isinstance(record, dict):
        shown = type(record).__name__
        raise PaperError("record", "", text=f"record must be a JSON object, not {shown}")
    check_paper_id(record)
    texts = [text_field(record, name) for name in ("title", "abstract")]
    text_field(record, "doi")
    text_field(record, "url")
    venue_field(record)
    if not any(text and has_visible(text) for text in texts):
        raise PaperError("title", "", text="fields 'title' and 'abstract' are both empty")
    return record


def check_paper_id(record: dict[str, Any]) -> None:
    """paper_id, echoed in the output, must be an integer, a short string or absent."""
    value = record.get("paper_id")
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return
    if not isinstance(value, str):
        raise PaperError("paper_id", f"must be an integer or a string, not {type(value).__name__}")
    if len(value) > MAX_PAPER_ID_CHARS:
        raise PaperError("paper_id", f"is longer than {MAX_PAPER_ID_CHARS} characters")
    text_field(record, "paper_id")  # NUL and lone surrogates


def paper_text(record: dict[str, Any], include_venue: bool = True, max_chars: int = 0) -> str:
    """Title, venue, abstract as one string; venue before the abstract so truncation keeps it."""
    parts = [(record.get("title") or "").strip()]
    venue = record.get("venue")
    if include_venue and venue:
        parts.append(venue.strip() if isinstance(venue, str) else "; ".join(v for v in venue if v))
    parts.append((record.get("abstract") or "").strip())
    text = ". ".join(part.rstrip(". ") for part in parts if part)
    return text[:max_chars] if max_chars else text


def paper_venues(record: dict[str, Any]) -> list[str]:
    """The venue field as a list of strings (one string, a list, or nothing)."""
    venue = record.get("venue")
    if not venue:
        return []
    return [venue] if isinstance(venue, str) else [v for v in venue if isinstance(v, str)]
