"""A person answers the training DAG's approval in the Airflow UI's Required Actions page
(headless Chromium, signed in through the login form), and the answer decides."""

from __future__ import annotations

import shutil

import pytest

from tests.live.conftest import ADMIN, Airflow
from tests.live.test_live_approval import TRAIN, _await_input, _finished, _row, _trigger
from tests.live.test_live_approval import live as live
from tests.live.test_live_browser import _sign_in, _wait
from tests.live.test_live_browser import browser as browser

# `live` and `browser` above are fixtures (the store with the curated papers; a signed-out
# Chromium), imported so pytest finds them here.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("chromium") and shutil.which("chromedriver")),
        reason="no chromium/chromedriver installed (apt-get install chromium chromium-driver)",
    ),
]


def test_approving_in_required_actions_promotes(live: Airflow, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run_id = _trigger(live, "live-ui", approval="required")
    _await_input(live, run_id)
    _sign_in(browser, live.url)
    browser.get(f"{live.url}/dags/{TRAIN}/runs/{run_id}/tasks/approve/required_actions")
    try:
        comment = _wait(browser, "[name='element_comment']")
        comment.send_keys("approved in the UI")
        approve = "//button[normalize-space()='Approve']"
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.XPATH, approve)).click()
    except Exception:
        pytest.fail(f"no approval form: {browser.current_url}\n{browser.page_source[-6000:]}")
    assert _finished(live, run_id)["state"] == "success"
    assert _row(live, "live-ui")[:4] == (True, "approved", ADMIN, "approved in the UI")
