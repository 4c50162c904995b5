"""Review in SageMaker Ground Truth: manifest, label categories, worker template, job request,
and the answers read back from the job's output manifest.

The PeTaL team's 2022 practice, without the hand-run script: a private workteam,
a custom worker template (`templates/ground_truth.liquid.html`, package data)
showing the whole taxonomy with the model's labels ticked, the "not biomimicry
relevant" and "not sure" verdicts, and pre/post Lambdas (the team's, by ARN). Each
manifest line is one paper: `source` (its title, which Ground Truth requires) and
`petal` (what the form shows). The pre-annotation Lambda passes the line on as
`taskInput`; the form's answer is `{"petal_answer": "<JSON>"}`, and the output
manifest holds it under the job's label attribute in either shape the AWS docs'
post-annotation Lambdas write: `{"annotationsFromAllWorkers": [{"workerId",
"annotationData": {"content"}}]}` or `{"workerId", "result"}`.

Label ids are written into the template's Liquid (`contains "id"`), so an id must
be plain (letters, digits, `_ . -`); the taxonomy's are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from html import escape
from importlib import resources
from typing import Any, BinaryIO

from petal_labeller.papers import LineError, bounded_lines, decode_line
from petal_labeller.review.answers import (
    Answer,
    AnswerError,
    instant_field,
    label_ids,
    shown_text,
    text_field,
)
from petal_labeller.review.decisions import MAX_LINE_BYTES
from petal_labeller.review.errors import ReviewError
from petal_labeller.taxonomy import Taxonomy

LABEL_ATTRIBUTE = "petal-review"
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_TREE_MARK = "<!-- petal:tree -->"
MAX_WORKERS = 9  # answers per data object Ground Truth allows
TASK_TIME_LIMIT_S = 3600
#: Ground Truth keeps a task on the workers' portal at most 10 days for a private team.
TASK_LIFETIME_S = 10 * 24 * 3600


def _check_ids(taxonomy: Taxonomy) -> None:
    bad = [label for label in taxonomy.ids if not _PLAIN_ID.fullmatch(label)]
    if bad:
        raise ReviewError(
            f"label ids {[b[:40] for b in bad[:5]]} cannot be named in a Ground Truth template "
            "(letters, digits, '_', '.', '-' only)"
        )


def manifest_line(record: Mapping[str, Any]) -> str:
    """One paper of the queue (`review.queue` record) as a line of the input manifest."""
    return json.dumps(
        {
            "source": record["title"],
            "petal": {
                "paper_id": record["paper_id"],
                "title": record["title"],
                "abstract": record.get("abstract") or "",
                "doi_url": record.get("doi_url") or "",
                "model_version": record["model_version"],
                "ticked": [m["label"] for m in record["model_labels"]],
                "model_labels": record["model_labels"],
            },
        },
        ensure_ascii=False,
    )


def label_categories(taxonomy: Taxonomy) -> dict[str, Any]:
    """The label category configuration file (LabelCategoryConfigS3Uri): the label ids."""
    _check_ids(taxonomy)
    return {"document-version": "2018-11-28", "labels": [{"label": i} for i in taxonomy.ids]}


def _tree(taxonomy: Taxonomy, parent: str | None, depth: int) -> list[str]:
    children = taxonomy.children(parent)
    if not children:
        return []
    pad = "  " * (depth + 2)
    lines = [f"{pad}<ul>"]
    for label in children:
        ticked = f'{{% if task.input.petal.ticked contains "{label}" %}}checked{{% endif %}}'
        lines.append(
            f'{pad}  <li><label><input type="checkbox" class="petal-label" value="{escape(label)}" '
            f"{ticked}> {escape(taxonomy[label].name)}</label>"
        )
        lines += _tree(taxonomy, label, depth + 1)
        lines.append(f"{pad}  </li>")
    lines.append(f"{pad}</ul>")
    return lines


def worker_template(taxonomy: Taxonomy) -> str:
    """The custom worker template (UiTemplateS3Uri) with the whole tree written in."""
    _check_ids(taxonomy)
    source = resources.files(__package__).joinpath("templates/ground_truth.liquid.html")
    text = source.read_text(encoding="utf-8")
    return text.replace(_TREE_MARK, "\n".join(_tree(taxonomy, None, 0)))


def job_name(prefix: str, stamp: str) -> str:
    """A labelling job name SageMaker accepts (63 characters, letters, digits, hyphens)."""
    name = re.sub(r"[^a-zA-Z0-9-]+", "-", f"{prefix}-{stamp}").strip("-")[:63].rstrip("-")
    if not _JOB_NAME.fullmatch(name):
        raise ReviewError(f"{name!r} is not a labelling job name")
    return name


def labeling_job_request(
    *,
    name: str,
    manifest_uri: str,
    output_uri: str,
    categories_uri: str,
    template_uri: str,
    role_arn: str,
    workteam_arn: str,
    pre_lambda_arn: str,
    post_lambda_arn: str,
    workers: int = 1,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The CreateLabelingJob request (boto3's `create_labeling_job(**request)`)."""
    if not 1 <= workers <= MAX_WORKERS:
        raise ReviewError(f"workers per paper must be 1 to {MAX_WORKERS}, not {workers}")
    return {
        "LabelingJobName": name,
        "LabelAttributeName": LABEL_ATTRIBUTE,
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": manifest_uri}},
            "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation"]},
        },
        "OutputConfig": {"S3OutputPath": output_uri},
        "RoleArn": role_arn,
        "LabelCategoryConfigS3Uri": categories_uri,
        "StoppingConditions": {"MaxPercentageOfInputDatasetLabeled": 100},
        "HumanTaskConfig": {
            "WorkteamArn": workteam_arn,
            "UiConfig": {"UiTemplateS3Uri": template_uri},
            "PreHumanTaskLambdaArn": pre_lambda_arn,
            "TaskKeywords": ["PeTaL", "biomimicry", "taxonomy"],
            "TaskTitle": "PeTaL: label a paper with the biomimicry taxonomy",
            "TaskDescription": (
                "Check the model's labels for one paper in the taxonomy tree, or say it is not "
                "biomimicry relevant."
            ),
            "NumberOfHumanWorkersPerDataObject": workers,
            "TaskTimeLimitInSeconds": TASK_TIME_LIMIT_S,
            "TaskAvailabilityLifetimeInSeconds": TASK_LIFETIME_S,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": post_lambda_arn},
        },
        "Tags": [{"Key": k, "Value": v} for k, v in sorted((tags or {}).items())],
    }


# Reading the output manifest ------------------------------------------------------


def _json_in_string(task: str, field: str, text: str) -> Any:
    """Ground Truth nests JSON in strings (the content, then the form's own field)."""
    try:
        return decode_line(text.encode("utf-8", "surrogatepass"))
    except LineError as exc:
        raise AnswerError(task, field, f"is {exc}") from None


def _content(task: str, value: Any) -> Mapping:
    """The form's answer: {"verdict", "labels"} from `petal_answer` (JSON in a string)."""
    if isinstance(value, str):
        if len(value) > MAX_LINE_BYTES:
            raise AnswerError(task, "content", "is too long")
        value = _json_in_string(task, "content", value)
    if not isinstance(value, Mapping):
        raise AnswerError(task, "content", "must be the form's JSON object")
    answer = value.get("petal_answer")
    if isinstance(answer, str):
        answer = _json_in_string(task, "petal_answer", answer)
    if not isinstance(answer, Mapping):
        raise AnswerError(task, "petal_answer", "is missing: the form is not PeTaL's")
    return answer


def _answer(task, paper, worker, content, when, taxonomy, now) -> Answer:
    form = _content(task, content)
    verdict = form.get("verdict")
    if verdict not in ("labels", "irrelevant", "not_sure"):
        raise AnswerError(task, "verdict", "must be 'labels', 'irrelevant' or 'not_sure'")
    labels = label_ids(task, "labels", form.get("labels", []), taxonomy)
    if verdict != "labels" and labels:
        raise AnswerError(task, "verdict", f"{verdict!r} with labels ticked: which is meant?")
    return Answer(
        task=task,
        verdict=verdict,
        labels=labels,
        reviewer=text_field(task, "workerId", worker),
        answered_at=when,
        paper_id=paper,
        shown=shown_text(content),
    )


def _line_answers(
    row: Mapping, taxonomy: Taxonomy, now: datetime
) -> Iterator[Answer | AnswerError]:
    petal = row.get("petal")
    paper = petal.get("paper_id") if isinstance(petal, Mapping) else None
    if isinstance(paper, bool) or not isinstance(paper, int):
        yield AnswerError(
            None, "petal.paper_id", "is missing: not a line PeTaL sent", shown_text(row)
        )
        return
    task = str(paper)
    meta = row.get(f"{LABEL_ATTRIBUTE}-metadata")
    if isinstance(meta, Mapping) and meta.get("failure-reason"):
        return  # nobody answered in time: the task stays open until the batch ends
    if not isinstance(meta, Mapping):
        return  # not labelled (yet)
    when = instant_field(task, "creation-date", meta.get("creation-date"), now)
    value = row.get(LABEL_ATTRIBUTE)
    if not isinstance(value, Mapping):
        yield AnswerError(task, LABEL_ATTRIBUTE, "must be an object", shown_text(value))
        return
    if "annotationsFromAllWorkers" in value:
        workers = value["annotationsFromAllWorkers"]
        if not isinstance(workers, list) or len(workers) > MAX_WORKERS:
            yield AnswerError(task, "annotationsFromAllWorkers", f"must list at most {MAX_WORKERS}")
            return
        items = [
            (w.get("workerId"), (w.get("annotationData") or {}).get("content"))
            if isinstance(w, Mapping) and isinstance(w.get("annotationData") or {}, Mapping)
            else (None, None)
            for w in workers
        ]
    else:
        items = [(value.get("workerId"), value.get("result"))]
    for worker, content in items:
        try:
            yield _answer(task, paper, worker, content, when, taxonomy, now)
        except AnswerError as error:
            error.shown = error.shown or shown_text(content)
            yield error


def read_answers(
    handle: BinaryIO, taxonomy: Taxonomy, now: datetime
) -> Iterator[Answer | AnswerError]:
    """Every answer in an output manifest (JSON lines), each line read bounded."""
    for number, raw, whole in bounded_lines(handle, MAX_LINE_BYTES):
        if not raw.strip():
            continue
        shown = raw[:2000].decode("utf-8", "backslashreplace")
        if not whole:
            yield AnswerError(None, "line", f"line {number} is over {MAX_LINE_BYTES} bytes", shown)
            continue
        try:
            row = decode_line(raw)
        except LineError as exc:
            yield AnswerError(None, "line", f"line {number} is {exc}", shown)
            continue
        if not isinstance(row, Mapping):
            yield AnswerError(None, "line", f"line {number} is not a JSON object", shown)
            continue
        try:
            yield from _line_answers(row, taxonomy, now)
        except AnswerError as error:
            error.shown = error.shown or shown
            yield error


def manifest(records: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(manifest_line(r) + "\n" for r in records).encode("utf-8")
