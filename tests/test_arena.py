"""The arena: battles judged from the gold, Bradley–Terry ratings, the escaped page, and `rlhf-gym arena`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rlhf_gym.cli import main
from rlhf_gym.feedback.arena import Battle, arena_board, battles_to_pairs, judge_battles, to_html, to_markdown
from rlhf_gym.rewards.annotators import Annotator
from rlhf_gym.rewards.base import CallableReward

LENGTH = CallableReward(lambda prompts, texts: [float(len(t)) for t in texts])
EVIL = '<script>alert(1)</script><b onmouseover="alert(2)">x</b>'


def _battles(n: int = 30) -> list[Battle]:
    out = []
    for i in range(n):  # "long" writes longer texts than "short"; sides alternate
        long, short = f"a much longer answer {i}", f"short {i}"
        out.append(Battle(f"p{i}", "long", "short", long, short) if i % 2 else Battle(f"p{i}", "short", "long", short, long))
    return out


def test_a_decisive_annotator_follows_the_gold_and_equal_texts_tie() -> None:
    matches = judge_battles([*_battles(), Battle("p", "long", "short", "same", "same")], [Annotator("a", temperature=0)], LENGTH)
    assert all(r == (1.0 if a == "long" else 0.0) for a, _, r in matches[:-1])
    assert matches[-1] == ("long", "short", 0.5)
    noisy = judge_battles(_battles(400), [Annotator("coin", temperature=0, flip_rate=0.5, seed=3)], LENGTH)
    wins = sum(r if a == "long" else 1 - r for a, _, r in noisy) / len(noisy)
    assert 0.4 < wins < 0.6  # a coin-flipping annotator makes the better policy win about half the time


def test_the_board_ranks_the_winner_first_with_intervals() -> None:
    matches = judge_battles(_battles(), [Annotator("a", temperature=0)], LENGTH)
    board = arena_board(matches, {"long": 0.9, "short": 0.1}, n_boot=50)
    first, second = board["rows"]
    assert (first["policy"], first["win_rate"], second["win_rate"]) == ("long", 1.0, 0.0)
    assert first["lower"] <= first["rating"] <= first["upper"] and first["lower"] > second["upper"]
    assert first["gold"] == 0.9 and "| 1 | long |" in to_markdown(board, "t")


def test_the_page_and_the_pairs_keep_model_text_as_text() -> None:
    battle = Battle(EVIL, EVIL, "b", EVIL, "fine")
    board = arena_board([(EVIL, "b", 1.0), (EVIL, "b", 0.0)], n_boot=10)
    page = to_html(board, "arena", [battle])
    assert "<script>" not in page and "<b " not in page and page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 4
    row = battles_to_pairs([battle], "sentiment")[0]
    assert row == {"prompt": EVIL, "candidate1": EVIL, "candidate2": "fine", "task": "sentiment",
                   "meta": {"policy1": EVIL, "policy2": "b"}}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("arena") / "ppo"
    root = Path(__file__).resolve().parents[1]
    assert main(["train", "--env", str(root / "envs" / "sentiment.yaml"), "--agent", str(root / "agents" / "ppo.yaml"),
                 "--out", str(out), "--no-progress", "--wandb", "disabled", "--set", "run.total_timesteps=200",
                 "--set", "run.torch_threads=1", "--set", "agent.batch_size=8", "--set", "agent.minibatch_size=4",
                 "--set", "env.num_envs=8", "--set", "run.eval_episodes=8"]) == 0
    return out


def test_the_arena_command_rates_a_run_against_the_start(tmp_path, trained_run, capsys) -> None:
    out = tmp_path / "arena"
    assert main(["arena", "--task", "sentiment", "--policies", "start", f"ppo={trained_run}", "--prompts", "12",
                 "--bootstrap", "20", "--out", str(out)]) == 0
    result = capsys.readouterr().out.strip().splitlines()[-1]
    assert result.startswith("RESULT battles=12 ") and "ppo.rating=" in result and "start.rating=" in result
    board = json.loads((out / "arena.json").read_text())
    assert {r["policy"] for r in board["rows"]} == {"start", "ppo"} and all("gold" in r for r in board["rows"])
    battles = [json.loads(line) for line in (out / "battles.jsonl").read_text().splitlines()]
    assert len(battles) == 12 and {b["meta"]["policy1"] for b in battles} == {"start", "ppo"}  # sides shuffled
    assert "<table>" in (out / "arena.html").read_text()
    assert main(["arena", "--task", "sentiment", "--policies", "start", str(trained_run), "--prompts", "4",
                 "--pairs-only", "--out", str(tmp_path / "pairs")]) == 0
    assert len((tmp_path / "pairs" / "pairs.jsonl").read_text().splitlines()) == 4
    assert not (tmp_path / "pairs" / "arena.json").exists()


def test_people_s_labels_of_arena_battles_rate_the_policies(tmp_path, capsys) -> None:
    from rlhf_gym.feedback.items import parse_item
    from rlhf_gym.feedback.store import LabelStore

    rows = battles_to_pairs([*_battles(12), Battle("same", "long", "short", "x", "x")], "sentiment", drop_identical=True)
    assert len(rows) == 12  # the battle of identical texts is nothing to show a person
    store = LabelStore(tmp_path / "labels.sqlite")
    store.add_items([parse_item(r, f"row {i}") for i, r in enumerate(rows)])
    store.add_annotator("alice")
    alice = store.annotator_named("alice").id
    for stored in store.items():  # alice prefers the longer text, except one tie
        longer = "a" if len(stored.item.candidates[0]) > len(stored.item.candidates[1]) else "b"
        store.add_label(stored.id, alice, choice="tie" if stored.id == 1 else longer)
    out = tmp_path / "board"
    assert main(["arena", "--task", "sentiment", "--labels", str(tmp_path / "labels.sqlite"), "--bootstrap", "20",
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("RESULT battles=12 long.rating=")
    board = json.loads((out / "arena.json").read_text())
    assert [r["policy"] for r in board["rows"]] == ["long", "short"] and board["rows"][0]["win_rate"] == 11.5 / 12
    assert main(["arena", "--task", "concise", "--labels", str(tmp_path / "labels.sqlite"), "--out", str(tmp_path / "x")]) == 2
    assert "holds battles of task 'sentiment', not --task concise" in capsys.readouterr().err


@pytest.mark.parametrize("policies,message", [
    (["start"], "at least two policies"),
    (["start", "start"], "two policies are named 'start'"),
    (["start", "/no/such/run"], "/no/such/run is not 'start', a run directory"),
    ([], "arena needs --policies"),
])
def test_bad_arena_input_is_one_line(tmp_path, capsys, policies, message) -> None:
    assert main(["arena", "--task", "sentiment", *(["--policies", *policies] if policies else []),
                 "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "a").exists()


@pytest.mark.browser
@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")), reason="Debian's chromium and "
                    "chromium-driver are not installed (.ci/run installs them)")
def test_the_arena_page_in_a_browser_shows_injected_markup_as_text(tmp_path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    page = tmp_path / "arena.html"
    page.write_text(to_html(arena_board([(EVIL, "b", 1.0), (EVIL, "b", 0.0), (EVIL, "b", 1.0)], n_boot=10), "arena",
                            [Battle(EVIL, EVIL, "b", EVIL, "fine")]), encoding="utf-8")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")), options=options)
    try:
        driver.get(page.as_uri())
        cells = driver.find_elements(By.CSS_SELECTOR, "tbody tr td")
        assert cells[1].text == EVIL  # the policy's name, shown literally
        assert driver.find_element(By.CSS_SELECTOR, ".prompt").text == EVIL
        assert driver.find_elements(By.TAG_NAME, "script") == [] and driver.find_elements(By.CSS_SELECTOR, "td b") == []
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 -- reading it is what raises
    finally:
        driver.quit()
