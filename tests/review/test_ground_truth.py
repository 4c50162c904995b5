"""Ground Truth: manifest, categories, worker template, job request, output manifest read back.

The request is checked against botocore's own service model for CreateLabelingJob;
the template is rendered by a Liquid engine with Ground Truth's autoescaping (and,
marked slow, run in headless Chromium); the output manifest is Ground Truth's
documented format as the AWS sample post-annotation Lambdas consolidate it.
"""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime

import pytest

from petal_labeller.review import ground_truth
from petal_labeller.review.answers import Answer, AnswerError
from petal_labeller.review.errors import ReviewError
from petal_labeller.review.publish import collect_ground_truth, record_sent
from petal_labeller.review.selection import select_papers
from petal_labeller.taxonomy import Label, Taxonomy
from tests.review.conftest import TREE, curator_labels

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
ATTR = ground_truth.LABEL_ATTRIBUTE


def _record(**fields) -> dict:
    record = {
        "paper_id": 5, "title": "Heat", "abstract": "An abstract.", "model_version": "v1",
        "doi_url": "https://doi.org/10.5555/torn", "uncertainty": 0.467,
        "model_labels": [
            {"label": "protect", "name": "Protect from harm", "score": 0.5},
            {"label": "heat", "name": "Protect from temperature", "score": 0.3},
        ],
    }  # fmt: skip
    return {**record, **fields}


def _request(**overrides) -> dict:
    arguments = {
        "name": ground_truth.job_name("petal-review", "2026-12-02T15:00:00+00:00"),
        "manifest_uri": "s3://petal/review/job/manifest.jsonl",
        "output_uri": "s3://petal/review/job/output/",
        "categories_uri": "s3://petal/review/job/categories.json",
        "template_uri": "s3://petal/review/job/template.liquid.html",
        "role_arn": "arn:aws:iam::123456789012:role/petal-ground-truth",
        "workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/petal",
        "pre_lambda_arn": "arn:aws:lambda:us-east-1:123456789012:function:petal-pre",
        "post_lambda_arn": "arn:aws:lambda:us-east-1:123456789012:function:petal-post",
        "tags": {"petal:batch": "2026-12-02"},
    }
    return ground_truth.labeling_job_request(**{**arguments, **overrides})


def test_the_job_request_is_valid_for_botocores_own_model_of_create_labeling_job():
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateLabelingJob").input_shape
    request = _request()
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert request["LabelingJobName"] == "petal-review-2026-12-02T15-00-00-00-00"
    assert request["HumanTaskConfig"]["PreHumanTaskLambdaArn"].endswith(":petal-pre")
    consolidation = request["HumanTaskConfig"]["AnnotationConsolidationConfig"]
    assert consolidation["AnnotationConsolidationLambdaArn"].endswith(":petal-post")
    with pytest.raises(ReviewError, match="workers per paper must be 1 to 9"):
        _request(workers=10)


def test_the_manifest_line_has_the_source_ground_truth_requires_and_the_paper():
    line = json.loads(ground_truth.manifest_line(_record(title="<b>Heat</b>")))
    assert line["source"] == "<b>Heat</b>"
    assert line["petal"]["ticked"] == ["protect", "heat"] and line["petal"]["paper_id"] == 5
    assert ground_truth.manifest([_record(), _record(paper_id=6)]).count(b"\n") == 2


def test_the_label_categories_are_the_taxonomys_ids():
    categories = ground_truth.label_categories(TREE)
    assert categories["document-version"] == "2018-11-28"
    assert [c["label"] for c in categories["labels"]] == TREE.ids


def test_label_ids_that_cannot_be_written_into_liquid_are_refused():
    odd = Taxonomy([Label('x" %}{% raw', "X", 1, None)])
    with pytest.raises(ReviewError, match="cannot be named in a Ground Truth template"):
        ground_truth.worker_template(odd)


def _render(record: dict, taxonomy: Taxonomy = TREE) -> str:
    """The template as Ground Truth renders it: Liquid, values HTML-escaped by default."""
    from liquid import Environment

    line = json.loads(ground_truth.manifest_line(record))
    template = Environment(autoescape=True).from_string(ground_truth.worker_template(taxonomy))
    return template.render(task={"input": line})  # the pre-annotation Lambda passes the line on


def test_the_template_shows_the_tree_with_the_models_labels_ticked():
    html = _render(_record())
    for label in TREE:
        assert f'value="{label.id}"' in html and label.name in html
    assert 'value="protect" checked>' in html and 'value="heat" checked>' in html
    assert 'value="cold" >' in html and 'value="swim" >' in html
    assert '<input type="hidden" name="petal_answer"' in html


def test_markup_in_a_title_abstract_or_label_name_is_text_in_the_template():
    tree = Taxonomy([Label("x", "<img src=x onerror=alert(1)>", 1, None)])
    html = _render(
        _record(
            title="<script>window.pwned=1</script>",
            abstract='"><script>alert(2)</script>',
            doi_url='javascript:alert(3)"',
            model_labels=[],
        ),
        tree,
    )
    assert "<script>window.pwned" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript:alert(3)&#34;"' in html or 'href="javascript:alert(3)&quot;"' in html


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="no chromium/chromedriver installed (apt-get install chromium chromium-driver)",
)
def test_in_chromium_the_form_ticks_parents_and_writes_the_answer(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    page = tmp_path / "task.html"
    page.write_text(_render(_record(title="<script>window.pwned=1</script>")), encoding="utf-8")
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    try:
        driver.get(page.as_uri())  # crowd-html-elements.js cannot load here: the form is ours
        assert driver.find_element(By.ID, "petal-title").text == "<script>window.pwned=1</script>"
        assert driver.execute_script("return window.pwned === undefined")

        def answer():
            value = driver.find_element(By.ID, "petal-answer").get_attribute("value")
            return json.loads(value)

        assert answer() == {"verdict": "labels", "labels": ["protect", "heat"]}
        driver.find_element(By.CSS_SELECTOR, "input[value='heat']").click()  # untick
        driver.find_element(By.CSS_SELECTOR, "input[value='swim']").click()  # ticks move too
        assert answer() == {"verdict": "labels", "labels": ["protect", "move", "swim"]}
        driver.find_element(By.CSS_SELECTOR, "input[value='protect']").click()
        assert answer()["labels"] == ["move", "swim"]
        driver.find_element(By.CSS_SELECTOR, "input[value='irrelevant']").click()
        assert answer() == {"verdict": "irrelevant", "labels": []}
    finally:
        driver.quit()


# The output manifest ---------------------------------------------------------------


def _output_line(paper_id: int, form: dict | str, worker="curator-sub-1", shape="all", **extra):
    content = form if isinstance(form, str) else json.dumps({"petal_answer": json.dumps(form)})
    if shape == "all":
        value = {
            "annotationsFromAllWorkers": [
                {"workerId": worker, "annotationData": {"content": content}}
            ]
        }
    else:
        value = {"workerId": worker, "result": json.loads(content)}
    line = json.loads(ground_truth.manifest_line(_record(paper_id=paper_id)))
    line[ATTR] = value
    line[f"{ATTR}-metadata"] = {
        "type": "groundtruth/custom", "job-name": "petal-review-1", "human-annotated": "yes",
        "creation-date": "2026-12-01T10:00:00.000000",
    }  # fmt: skip
    line.update(extra)
    return json.dumps(line)


def _read(*lines: str | bytes) -> list:
    data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    return list(ground_truth.read_answers(io.BytesIO(data), TREE, NOW))


def test_both_documented_consolidation_shapes_read_as_answers():
    form = {"verdict": "labels", "labels": ["protect", "cold"]}
    first, second = _read(_output_line(5, form), _output_line(6, form, shape="one"))
    assert first == Answer(
        task="5", verdict="labels", labels=("protect", "cold"), reviewer="curator-sub-1",
        answered_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC), paper_id=5, shown=first.shown,
    )  # fmt: skip
    assert (second.task, second.labels) == ("6", ("protect", "cold"))


def test_unanswered_and_failed_objects_are_no_answer():
    unanswered = json.loads(ground_truth.manifest_line(_record()))
    failed = json.loads(_output_line(5, {"verdict": "labels", "labels": []}))
    failed[f"{ATTR}-metadata"]["failure-reason"] = "ClientError: task expired"
    assert _read(json.dumps(unanswered), json.dumps(failed)) == []


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        (_output_line(5, {"verdict": "labels", "labels": ["<script>"]}), "labels", "unknown label"),
        (_output_line(5, {"verdict": "labels", "labels": "heat"}), "labels", "list of label ids"),
        (_output_line(5, {"verdict": "maybe"}), "verdict", "must be 'labels'"),
        (_output_line(5, {"verdict": "irrelevant", "labels": ["heat"]}), "verdict", "which is"),
        (_output_line(5, '{"something": "else"}'), "petal_answer", "the form is not PeTaL's"),
        (_output_line(5, "not json"), "content", "is not valid JSON"),
        (_output_line(5, {"verdict": "labels"}, worker=None), "workerId", "is missing"),
        (_output_line(5, {"verdict": "labels"}, worker=["x"]), "workerId", "must be a string"),
        (_output_line(5, {"verdict": "labels", "labels": ["heat"] * 50}), "labels", "has 50"),
    ],
)
def test_each_hostile_answer_is_its_own_error_naming_the_task_and_field(line, field, reason):
    good = _output_line(6, {"verdict": "labels", "labels": ["heat"]})
    bad, fine = _read(line, good)
    assert isinstance(bad, AnswerError) and (bad.task, bad.field) == ("5", field), str(bad)
    assert reason in str(bad)
    assert isinstance(fine, Answer) and fine.task == "6"


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (b"{not json", "line", "line 1 is not valid JSON"),
        (b"[1, 2]", "line", "line 1 is not a JSON object"),
        (b'{"source": "x"}', "petal.paper_id", "not a line PeTaL sent"),
        (b'{"petal": {"paper_id": true}}', "petal.paper_id", "not a line PeTaL sent"),
        (b"[" * 100_000 + b"]" * 100_000, "line", "line 1 is not usable JSON: nested too deeply"),
    ],
)
def test_hostile_lines_are_errors_too(raw, field, reason):
    (bad,) = _read(raw)
    assert isinstance(bad, AnswerError) and bad.field == field and reason in str(bad)


def test_a_huge_line_is_refused_without_holding_it():
    from petal_labeller.review.decisions import MAX_LINE_BYTES

    huge = b'{"source": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}'
    bad, good = _read(huge, _output_line(6, {"verdict": "not_sure", "labels": []}))
    assert isinstance(bad, AnswerError) and "over 1048576 bytes" in str(bad)
    assert len(bad.shown) <= 2000 and good.verdict == "not_sure"


def test_a_jobs_output_manifest_is_collected_into_the_store(store):
    conn, ids = store["conn"], store["ids"]
    records = select_papers(conn, TREE, 3, "uncertain", neighbours=0)
    record_sent(
        conn, "ground_truth", "petal-review-1", records, [str(r["paper_id"]) for r in records]
    )
    output = "".join(
        line + "\n"
        for line in (
            _output_line(ids["torn"], {"verdict": "labels", "labels": ["protect", "cold"]}),
            _output_line(ids["deep"], {"verdict": "not_sure", "labels": []}),
            _output_line(ids["sure"], {"verdict": "labels", "labels": ["swim"]}, worker="bo"),
            _output_line(ids["sure"], {"verdict": "labels", "labels": ["move"]}, worker="cy"),
        )
    ).encode()
    report = collect_ground_truth(conn, "petal-review-1", io.BytesIO(output), TREE, NOW)
    assert (report.curated, report.not_sure, report.rejects.count) == (2, 1, 1)
    assert curator_labels(conn, ids["torn"]) == [
        ("cold", "curator-sub-1"),
        ("protect", "curator-sub-1"),
    ]
    assert curator_labels(conn, ids["sure"]) == [("move", "bo"), ("swim", "bo")]
    (duplicate,) = report.rejects.first
    assert duplicate.line == 4 and "was answered already by answer 3 (bo)" in duplicate.reason
    again = collect_ground_truth(conn, "petal-review-1", io.BytesIO(output), TREE, NOW)
    assert (again.curated, again.already) == (0, 4)
