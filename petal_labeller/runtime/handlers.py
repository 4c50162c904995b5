"""SageMaker's four inference handlers, the only entry into the runtime for a request.

The serve app, the local backend (`model/predict.py`) and the tests' SageMaker
fake all call these from the installed package; the artefact carries no code.

Request: `application/jsonlines`, one paper a line (`doi`, `title`, `abstract`,
`venue`, optional `paper_id`). Response: one line per input line, same order:
`{"doi", "title", "paper_id"?, "scores": {label: prob, ...every label}, "labels": [...]}`
or `{"line": N, "paper_id"?, "error": "..."}` for a bad line. Every line is
strict JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from petal_labeller.papers import LineError, PaperError, decode_line
from petal_labeller.runtime.jsonlines import (
    ANY_MEDIA,
    JSONLINES,
    JSONLINES_ALIASES,
    media_type,
    strict_line,
)
from petal_labeller.runtime.memory import release_free_memory
from petal_labeller.runtime.text import check_paper_id, validate_paper


def model_fn(model_dir: str | Path, precision: str | None = None, batch_size: int | None = None):
    """`load.load_model` under the name SageMaker's inference toolkit calls, once per container."""
    from petal_labeller.runtime.load import load_model  # torch: only where a model loads

    return load_model(model_dir, precision=precision, batch_size=batch_size)


def _item(number: int, line: bytes) -> dict[str, Any]:
    item: dict[str, Any] = {"line": number}
    try:
        record = decode_line(line)
    except LineError as exc:
        item["error"] = str(exc)
        return item
    if isinstance(record, dict) and "paper_id" in record:
        try:
            check_paper_id(record)
            item["paper_id"] = record["paper_id"]
        except PaperError:
            pass  # not echoed: validate_paper below names the field
    try:
        item["record"] = validate_paper(record)
    except PaperError as exc:
        item["error"] = str(exc)
    return item


def input_fn(
    body: bytes | str, content_type: str = JSONLINES, first_line: int = 1
) -> list[dict[str, Any]]:
    """Split a jsonlines body into items: {"line", "record"} or {"line", "error"}.

    Each line is decoded and validated on its own, so one bad line (invalid
    JSON, non-UTF-8 bytes, deep nesting, a wrong field) never loses the others.
    """
    if media_type(content_type or JSONLINES) not in JSONLINES_ALIASES:
        raise ValueError(f"unsupported content type {content_type!r}; send {JSONLINES}")
    raw = body.encode("utf-8", errors="surrogatepass") if isinstance(body, str) else bytes(body)
    lines = raw.split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines.pop()  # the newline that ends the last record
    return [_item(number, line) for number, line in enumerate(lines, start=first_line)]


def predict_fn(data: list[dict[str, Any]], model: Any) -> list[dict[str, Any]]:
    """Label every valid item in batches; bad items pass through as error lines."""
    good = [item for item in data if "record" in item]
    try:
        predictions = iter(model.predict([item["record"] for item in good]))
    finally:
        release_free_memory()  # else RSS creeps up batch by batch (runtime/memory.py)
    output = []
    for item in data:
        if "record" in item:
            output.append(next(predictions))
        else:
            error = {"line": item["line"]}
            if "paper_id" in item:
                error["paper_id"] = item["paper_id"]
            error["error"] = item["error"]
            output.append(error)
    return output


def output_fn(prediction: list[dict[str, Any]], accept: str = JSONLINES) -> str:
    """One strict JSON object a line, in input order; an unwritable line becomes an error line."""
    if media_type(accept or JSONLINES) not in (JSONLINES_ALIASES | ANY_MEDIA):
        raise ValueError(f"unsupported accept type {accept!r}; ask for {JSONLINES}")
    lines = []
    for line in prediction:
        try:
            lines.append(strict_line(line))
        except ValueError as exc:
            error = {"line": line.get("line"), "error": f"output is not strict JSON: {exc}"}
            lines.append(strict_line(error))
    return "".join(lines)
