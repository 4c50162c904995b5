"""Issue 27: a `petal_review_papers` run on a real Label Studio, answered by a curator in
headless Chromium: the run publishes, its sensor waits, the curator adds a label in the
taxonomy tree and submits, the run collects the answer as curator labels, and the
cleanup leaves no open task. Skipped without Label Studio's venv or a browser (CI has
both and fails instead: tests/fixtures/label_studio.py)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.dags.test_review_papers import _query, _run
from tests.review.conftest import (
    curator_labels,
    store,  # noqa: F401 (the review store fixture)
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WAIT_S = 120
PROJECT = "PeTaL review (browser)"


def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(WAIT_S)
    return driver


def _wait(driver, css: str, clickable: bool = True):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    condition = ec.element_to_be_clickable if clickable else ec.presence_of_element_located
    return WebDriverWait(driver, WAIT_S).until(condition((By.CSS_SELECTOR, css)))


def _tree_node(driver, title: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    xpath = (
        "//div[contains(@class,'ant-select-tree-treenode')]"
        f"[.//span[contains(@class,'ant-select-tree-title') and normalize-space()='{title}']]"
    )
    return WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.XPATH, xpath))


def curate_in_the_browser(
    server, task_id: int, project: int, profile: Path, add: tuple[str, str],
    shown: str | None = None,
) -> None:  # fmt: skip
    """What a curator does: sign in, open the task, keep the model's pre-filled labels
    (`shown`, the first chip's title, when given), open `add` = (parent, child) in the
    taxonomy tree and tick the child, submit."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser(profile)
    try:
        driver.get(f"{server.url}/user/login/")
        _wait(driver, "input[name='email']").send_keys(server.email)
        _wait(driver, "input[name='password']").send_keys(server.password)
        _wait(driver, "button[type='submit']").click()
        WebDriverWait(driver, WAIT_S).until(lambda d: "/user/login" not in d.current_url)
        driver.get(f"{server.url}/projects/{project}/data?task={task_id}")
        if shown is not None:  # the model's labels, pre-filled (the prediction)
            chip = _wait(driver, ".htx-taxonomy .ant-select-selection-item", clickable=False)
            assert chip.get_attribute("title") == shown
        _wait(driver, ".htx-taxonomy .ant-select-selector").click()
        parent, child = add
        switcher, checkbox = ".ant-select-tree-switcher", ".ant-select-tree-checkbox"
        _tree_node(driver, parent).find_element(By.CSS_SELECTOR, switcher).click()
        _tree_node(driver, child).find_element(By.CSS_SELECTOR, checkbox).click()
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        submit = WebDriverWait(driver, WAIT_S).until(
            lambda d: d.find_element(By.XPATH, "//button[normalize-space()='Submit']")
        )
        submit.click()
        WebDriverWait(driver, WAIT_S).until(
            lambda d: not d.find_elements(By.XPATH, "//button[normalize-space()='Submit']")
        )
    finally:
        driver.quit()


def test_a_curator_answers_in_label_studio_and_the_run_collects_it(
    airflow_db,
    store,  # noqa: F811 (the review store fixture)
    petal_home,
    label_studio,
    database_url,
    tmp_path,
    monkeypatch,
):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("no chromium/chromedriver")
    from petal_labeller.store import review_tasks
    from petal_labeller.store.connection import connect

    conn, ids = store["conn"], store["ids"]
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager downloads nothing
    monkeypatch.setenv("AIRFLOW_CONN_PETAL_LABEL_STUDIO", json.dumps(
        {"conn_type": "generic", "host": label_studio.url, "password": label_studio.token}
    ))  # fmt: skip
    monkeypatch.setenv("AIRFLOW_VAR_PETAL_LABEL_STUDIO_PROJECT", PROJECT)
    monkeypatch.setenv("PETAL_REVIEW_POLL_SECONDS", "1")
    failures: list[BaseException] = []

    def curator() -> None:
        """Waits for the run's task to be out, then answers it (the run's sensor waits)."""
        try:
            deadline = time.monotonic() + WAIT_S * 3
            with closing(connect(database_url)) as mine:
                while not (batches := review_tasks.open_batches(mine, "label_studio")):
                    assert time.monotonic() < deadline, "the run published nothing"
                    time.sleep(1)
                [batch] = batches
                [task] = review_tasks.batch_tasks(mine, "label_studio", batch)
            curate_in_the_browser(
                label_studio, int(task), int(batch), tmp_path / "chromium", add=("Move", "Swim"),
                shown="Protect from harm / Protect from temperature",
            )  # fmt: skip
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    thread = threading.Thread(target=curator, daemon=True)
    thread.start()
    # dag.test runs in this (the main) thread: its tasks set signal handlers.
    run = _run({"backend": "label_studio", "papers": 1, "selection": "uncertain",
                "timeout_hours": 0.25})  # fmt: skip
    thread.join(timeout=WAIT_S)
    assert not failures, failures
    assert run.state == "success", [(t.task_id, t.state) for t in run.get_task_instances()]
    summary = next(t for t in run.get_task_instances() if t.task_id == "collect_and_apply")
    assert summary.xcom_pull(task_ids="collect_and_apply")["curated"] == 1
    # The model's labels kept, Swim added and closed upwards (Move), by the curator.
    assert curator_labels(conn, ids["torn"]) == [
        (label, label_studio.email) for label in ("heat", "move", "protect", "swim")
    ]
    assert review_tasks.open_batches(conn, "label_studio") == []
    assert _query(conn, "SELECT paper_id, status FROM review_tasks") == [(ids["torn"], "answered")]
