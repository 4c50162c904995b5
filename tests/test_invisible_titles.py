"""Issue 24 item 18: a title needs a visible character, wherever papers are validated."""

from __future__ import annotations

import json
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petal_labeller.papers import PaperError, has_visible, parse_paper, read_papers
from petal_labeller.runtime.text import validate_paper

#: The forms of the attack and their kin: zero-width space/joiners, word joiner, BOM,
#: soft hyphen, bidi marks, Mongolian vowel separator, a tag, invisible operators,
#: combining marks alone, variation selectors, Hangul fillers, the braille blank,
#: ideographic and no-break spaces, private use, controls.
INVISIBLE = [
    "\u200b", "\u200c\u200d", "\u2060\ufeff", "\u00ad", "\u200e\u200f\u202e",
    "\u180e", "\U000e0041", "\u2061\u2062\u2063\u2064", "\u0301\u0308", "\ufe0f\u034f",
    "\u3164\u115f\u1160\uffa0", "\u2800", "\u3000\u00a0\u2007", "\ue000", "\x07\x1b",
    "\u200b \u200b", "\u061c\u2066\u2069",
]  # fmt: skip


#: NUL is refused on its own grounds (PostgreSQL text cannot hold it).
INVISIBLE_CATEGORIES = {"Cf", "Zs", "Cc", "Mn", "Me", "Co", "Zl", "Zp"}
BLANK_LETTERS = "\u3164\u115f\u1160\uffa0\u2800"


def _invisible_chars() -> list[str]:
    chars = []
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if ch != "\x00" and unicodedata.category(ch) in INVISIBLE_CATEGORIES:
            chars.append(ch)
    return chars


INVISIBLE_CHARS = _invisible_chars()


@pytest.mark.parametrize("title", INVISIBLE)
def test_an_invisible_title_is_refused_naming_the_field(title):
    with pytest.raises(PaperError) as caught:
        parse_paper({"title": title, "abstract": "A real abstract."})
    assert caught.value.field == "title"


@given(st.lists(st.sampled_from(INVISIBLE_CHARS), min_size=1, max_size=12))
def test_any_title_made_only_of_invisible_classes_is_refused(chars):
    title = "".join(chars)
    assert not has_visible(title)
    with pytest.raises(PaperError):
        parse_paper({"title": title})


@given(
    st.lists(st.sampled_from(INVISIBLE_CHARS), max_size=6),
    st.characters(categories=["L", "N", "P", "S"], exclude_characters=BLANK_LETTERS),
)
def test_one_visible_character_is_enough(chars, visible):
    title = "".join(chars) + visible + "".join(chars)
    assert parse_paper({"title": title}).title


@pytest.mark.parametrize("title", ["e\u0301", "Ü", "蝴蝶", "🦋", "1", "-", "ก่"])
def test_real_titles_are_kept(title):
    assert parse_paper({"title": title}).title == title


def test_import_rejects_invisible_titles_by_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "papers.jsonl"
    lines = [{"title": "Gecko feet"}] + [{"title": t} for t in INVISIBLE]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    results = [item for _, item in read_papers(path)]
    assert results[0].title == "Gecko feet"
    assert [(r.line, r.field) for r in results[1:]] == [
        (n, "title") for n in range(2, len(lines) + 1)
    ]
    # Whitespace alone was "missing or empty" before; every other form names the rule.
    assert all(
        "no visible character" in r.reason or "missing or empty" in r.reason for r in results[1:]
    )
    assert sum("no visible character" in r.reason for r in results[1:]) >= len(INVISIBLE) - 2


@pytest.mark.parametrize("title", INVISIBLE)
def test_inference_treats_an_invisible_title_without_abstract_as_empty(title):
    with pytest.raises(PaperError, match="both empty"):
        validate_paper({"paper_id": 1, "title": title, "abstract": "\u200b"})
    assert validate_paper({"title": title, "abstract": "Owl wings are quiet."})


def test_a_field_named_twice_is_that_lines_rejection_not_the_last_one_winning(tmp_path):
    """The same class as a CSV column named twice (issue 24 item 11), in the one decoder."""
    path = tmp_path / "papers.jsonl"
    path.write_bytes(b'{"title": "\\u200b", "title": "Gecko feet"}\n{"title": "Owl wings"}\n')
    results = [item for _, item in read_papers(path)]
    assert results[0].line == 1 and "'title' appears twice" in results[0].reason
    assert results[1].title == "Owl wings"
