"""The suite's static leaderboard page in a real browser (Debian's chromium, headless, driven by selenium)."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import pytest

from rlhf_gym.runner.leaderboard import to_html

matplotlib.use("Agg")

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed "
                                 "(apt-get install chromium chromium-driver; .ci/run installs them)")]


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)  # no selenium-manager
    yield driver
    driver.quit()


def board(agent: str) -> dict:
    rows = []
    for task in ("sentiment", "concise"):
        row = {"task": task, "agent": agent, "seeds": 3, "reached": 2}
        for key in ("gold_reward", "norm_gold", "rm_reward", "kl", "perplexity", "distinct_2", "tokens_to_threshold",
                    "wall_to_threshold", "wall_time"):
            row[key], row[f"{key}_std"] = 0.5, 0.1
        rows.append(row)
    return {"tasks": rows, "threshold": 0.5,
            "aggregate": [{"agent": agent, "norm_gold": 0.5, "norm_gold_std": 0.1, "seeds": 3, "tasks": 2,
                           "reached": 2, "runs": 6}],
            "norms": {t: {"start_gold": 0.1, "best_of_64_gold": 0.9, "proxy_accuracy": 0.8} for t in ("sentiment", "concise")}}


def test_the_leaderboard_renders_its_tables_and_curves_and_runs_no_injected_script(tmp_path: Path, browser) -> None:
    from matplotlib.figure import Figure
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "suite_curves.png")
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    (tmp_path / "leaderboard.html").write_text(to_html(board(evil), title="suite <i>board</i>"), encoding="utf-8")
    browser.get((tmp_path / "leaderboard.html").as_uri())

    assert browser.title == "suite <i>board</i>"
    tables = browser.find_elements(By.TAG_NAME, "table")
    assert len(tables) == 3  # the aggregate and one per task
    assert [h.text for h in browser.find_elements(By.TAG_NAME, "h2")] == ["Aggregate", "concise", "sentiment", "Curves"]  # tasks sorted
    first = tables[1].find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(By.TAG_NAME, "td")
    assert first[0].text == evil  # the agent's name is shown as text, markup and all
    assert "0.50 ± 0.10" in tables[0].text
    assert browser.find_elements(By.TAG_NAME, "script") == []
    assert len(browser.find_elements(By.TAG_NAME, "img")) == 1  # the injected <img> is text, not an element
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 -- reading it is what raises
    curves = browser.find_element(By.TAG_NAME, "img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", curves) > 0
