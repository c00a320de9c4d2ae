"""The labelling app in a real browser: Debian's chromium, headless, driven by selenium against a uvicorn
server in a subprocess. Labels by mouse and by keyboard, then checks that the export is what was clicked."""

from __future__ import annotations

import json
import shutil

import pytest
from label_server import serving, write_pairs

from rlhf_gym.cli import main
from rlhf_gym.feedback.store import LabelStore

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(DRIVER)),
                                 reason="Debian's chromium and chromium-driver are not installed at /usr/bin "
                                        "(apt-get install chromium chromium-driver; .ci/run installs them)")]

XSS = "<script>alert(1)</script> and <b>bold</b> <img src=x onerror=alert(2)>"
ROWS = [{"prompt": "The movie was", "candidate1": " great.", "candidate2": " awful."},
        {"prompt": "The food was", "candidate1": " cold.", "candidate2": " lovely."},
        {"prompt": "Injected:", "candidate1": XSS, "candidate2": " plain text."},
        {"prompt": "Rank:", "candidates": [" one", " two", " three"]},
        {"prompt": "Neither:", "candidate1": " bad one.", "candidate2": " bad two."}]


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)  # no selenium-manager
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _submit_and_wait(driver, action) -> None:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html")
    action()
    WebDriverWait(driver, 10).until(ec.staleness_of(old))  # the label was answered with the next page


def test_label_by_mouse_and_keyboard_then_export(tmp_path, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    db = tmp_path / "labels.sqlite"
    token = LabelStore(db).add_annotator("alice")
    with serving(write_pairs(tmp_path / "pairs.jsonl", ROWS), db) as (_, url):
        browser.get(url + "/")
        assert browser.current_url.endswith("/login")
        browser.find_element("id", "token").send_keys(token)
        _submit_and_wait(browser, lambda: browser.find_element("id", "login").click())
        assert "left for you" in browser.find_element("id", "progress").text

        # sides are shuffled per annotator: find where each text is shown
        browser.get(url + "/item/1")  # mouse: " great." is better, with feedback typed in (its letters are text)
        browser.find_element("id", "feedback").send_keys("a bit better")
        side = "a" if browser.find_element("id", "cand-1").text.strip() == "great." else "b"
        _submit_and_wait(browser, lambda: browser.find_element("id", f"choice-{side}").click())

        browser.get(url + "/item/2")  # keyboard: " lovely." is better
        side = "a" if browser.find_element("id", "cand-1").text.strip() == "lovely." else "b"
        _submit_and_wait(browser, lambda: ActionChains(browser).send_keys(side).perform())

        browser.get(url + "/item/3")  # hostile text is shown literally and runs nothing; keyboard: tie
        assert XSS in (browser.find_element("id", "cand-1").text, browser.find_element("id", "cand-2").text)  # literally
        assert not browser.find_elements("css selector", ".cand img, .cand b")
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
        _submit_and_wait(browser, lambda: ActionChains(browser).send_keys("t").perform())

        browser.get(url + "/item/4")  # a ranking three > one > two: mouse picks the first, keys the rest, Enter
        shown = [browser.find_element("id", f"cand-{n}").text.strip() for n in (1, 2, 3)]
        best, second, third = (str(shown.index(t) + 1) for t in ("three", "one", "two"))
        browser.find_element("id", f"pick-{best}").click()
        ActionChains(browser).send_keys(second).send_keys(third).perform()
        assert browser.find_element("id", "ranking").get_attribute("value") == f"{best},{second},{third}"
        _submit_and_wait(browser, lambda: ActionChains(browser).send_keys(Keys.ENTER).perform())

        browser.get(url + "/item/5")  # keyboard: both bad
        _submit_and_wait(browser, lambda: ActionChains(browser).send_keys("x").perform())
        assert "Nothing left to label" in browser.page_source
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018

    out = tmp_path / "prefs.jsonl"
    assert main(["label", "export", "--db", str(db), "--format", "ranking", "--out", str(out)]) == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"prompt": "The movie was", "completions": [" great.", " awful."]},
        {"prompt": "The food was", "completions": [" lovely.", " cold."]},
        {"prompt": "Rank:", "completions": [" three", " one", " two"]}]  # the tie is dropped
    assert main(["label", "export", "--db", str(db), "--format", "chosen_rejected", "--keep-ties", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[2] == {"prompt": "Injected:", "chosen": XSS, "rejected": " plain text.", "tie": True}
    assert len(rows) == 2 + 1 + 3  # "both bad" dropped without --keep-both-bad
    assert [lab.choice for lab in LabelStore(db).labels()] == ["a", "b", "tie", None, "both_bad"]
    assert [lab.feedback for lab in LabelStore(db).labels()][0] == "a bit better"
