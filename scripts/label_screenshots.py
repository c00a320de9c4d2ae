"""Screenshots of the labelling app's pages for docs/feedback.md, taken with Debian's headless chromium.

    python scripts/label_screenshots.py            # writes docs/images/label_*.png
    python scripts/label_screenshots.py --out DIR

The same fixed items, annotator and window size every time, so the pictures change only when the pages do.
Needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver); selenium never
downloads a browser here.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains

from rlhf_gym.feedback.app import create_app
from rlhf_gym.feedback.items import Item
from rlhf_gym.feedback.store import LabelStore

ITEMS = [
    Item("Review: I went to see this film last night and", (
        " it was a delight from start to finish. The cast is wonderful and the ending made me smile.",
        " I left after an hour. The plot makes no sense and the dialogue is <b>painful</b>.")),
    Item("Q: What is 17 + 25?\nA:", (" 42", " 41", " 42, because 17 + 25 = 42.", " I am not sure."), kind="ranking"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "images"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    store = LabelStore(Path(tempfile.mkdtemp()) / "labels.sqlite")
    store.add_items(ITEMS)
    token = store.add_annotator("alice")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(store, overlap=2, seed=0, shuffle=False), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1100,900", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=options)
    url = f"http://127.0.0.1:{port}"
    try:
        driver.get(url + "/login")
        driver.save_screenshot(str(out / "label_login.png"))
        driver.get(f"{url}/item/1?token={token}")
        driver.find_element("id", "feedback").send_keys("A answers the prompt; B is off-topic.")
        driver.save_screenshot(str(out / "label_pair.png"))
        driver.find_element("id", "choice-a").click()
        driver.get(url + "/item/2")
        ActionChains(driver).send_keys("3").send_keys("1").perform()
        driver.save_screenshot(str(out / "label_ranking.png"))
        driver.get(url + "/labels")
        driver.save_screenshot(str(out / "label_my_labels.png"))
    finally:
        driver.quit()
        server.should_exit = True
    print(f"wrote 4 screenshots to {out}")
    print("RESULT screenshots=4")


if __name__ == "__main__":
    main()
