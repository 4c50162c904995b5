"""The Airflow 3 UI in headless Chromium (Debian's /usr/bin/chromium through its
chromedriver, driven by Selenium): sign in as the tests' admin through the login form,
trigger `petal_label_papers` from its trigger form with a Param filled in, see the run
through the REST API, then open the PeTaL page in the same signed-in browser.

Skips only where no Chromium or chromedriver is installed (.ci/run installs both).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.conftest import ADMIN, ADMIN_PASSWORD, Airflow

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("chromium") and shutil.which("chromedriver")),
        reason="no chromium/chromedriver installed (apt-get install chromium chromium-driver)",
    ),
]

LABEL = "petal_label_papers"
WAIT_S = 60


@pytest.fixture
def browser(tmp_path: Path, monkeypatch) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager downloads nothing
    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, css: str, clickable: bool = False):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    condition = ec.element_to_be_clickable if clickable else ec.presence_of_element_located
    return WebDriverWait(driver, WAIT_S).until(condition((By.CSS_SELECTOR, css)))


def _sign_in(driver, url: str) -> None:
    """The simple auth manager's login form, as a person fills it in."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/")
    _wait(driver, "input[name='username']").send_keys(ADMIN)
    _wait(driver, "input[name='password']").send_keys(ADMIN_PASSWORD)
    _wait(driver, "button[type='submit']", clickable=True).click()
    WebDriverWait(driver, WAIT_S).until(lambda d: "/auth/login" not in d.current_url)


def _set(field, value: str) -> None:
    from selenium.webdriver.common.keys import Keys

    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(value, Keys.TAB)  # a number field commits its value on blur


def test_the_trigger_form_creates_a_run_with_its_param_and_the_petal_page_shows(
    airflow_services: Airflow, browser
):
    live = airflow_services
    before = {r["dag_run_id"] for r in live.runs(LABEL)}
    _sign_in(browser, live.url)

    browser.get(f"{live.url}/dags/{LABEL}")
    _wait(browser, "[data-testid='trigger-dag-button']", clickable=True).click()
    _set(_wait(browser, "input[name='element_max_papers']"), "7")
    _wait(browser, "[data-testid='trigger-dag-submit']", clickable=True).click()

    deadline = time.monotonic() + WAIT_S
    # (The form unpauses the DAG on trigger by default: scheduled catch-up runs may follow.)
    while not (
        new := [
            r
            for r in live.runs(LABEL)
            if r["dag_run_id"] not in before and r["run_type"] == "manual"
        ]
    ):
        assert time.monotonic() < deadline, "the trigger form created no run"
        time.sleep(1)
    [run] = new
    assert run["conf"]["max_papers"] == 7, run
    assert run["triggered_by"] == "ui"

    browser.get(f"{live.url}/petal/")
    page = browser.page_source
    assert "<h1>PeTaL labeller</h1>" in page, (browser.get_cookies(), page[:1500])
    assert _wait(browser, "table#runs").is_displayed()


def test_the_trigger_form_labels_the_default_backend_and_runs_without_an_instance_type(
    airflow_services: Airflow, browser
):
    """Issue 23 item 11: the backend choice reads as the default it stands for, not "null";
    a local run triggers with the instance type left empty (it was a required field)."""
    live = airflow_services
    before = {r["dag_run_id"] for r in live.runs(LABEL)}
    _sign_in(browser, live.url)

    browser.get(f"{live.url}/dags/{LABEL}")
    _wait(browser, "[data-testid='trigger-dag-button']", clickable=True).click()
    backend = _wait(browser, "#element_backend")
    assert "default (Variable petal_backend" in backend.text and "null" not in backend.text
    _set(_wait(browser, "input[name='element_instance_type']"), "")
    _wait(browser, "[data-testid='trigger-dag-submit']", clickable=True).click()

    deadline = time.monotonic() + WAIT_S
    while not (
        new := [
            r
            for r in live.runs(LABEL)
            if r["dag_run_id"] not in before and r["run_type"] == "manual"
        ]
    ):
        assert time.monotonic() < deadline, (
            "the trigger form created no run",
            browser.page_source[-3000:],
        )
        time.sleep(1)
    [run] = new
    assert run["conf"]["instance_type"] is None and run["conf"]["backend"] is None, run
    # The run's configuration is fine without an instance type (alone, this module has no
    # production model, so the run itself may fail later, at stage).
    live.wait_for_runs(LABEL, 1, lambda r: r["dag_run_id"] == run["dag_run_id"], 300)
    tis = live.task_instances(LABEL, run["dag_run_id"])
    assert tis["check_config"]["state"] == "success", tis["check_config"]


def test_the_petal_page_links_a_run_to_its_papers_in_the_browser(
    airflow_services: Airflow, browser
):
    """Issue 23 item 10: from the runs table to the run's own view, in the signed-in UI
    (the run the test above triggered has its row by now)."""
    live = airflow_services
    _sign_in(browser, live.url)
    browser.get(f"{live.url}/petal/")
    _wait(browser, "table#runs a.run-detail", clickable=True).click()

    assert _wait(browser, "table#run-papers").is_displayed()
    assert "/petal/run?id=" in browser.current_url
    assert "<h1>Run " in browser.page_source
