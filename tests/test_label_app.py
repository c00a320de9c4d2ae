"""The labelling app over HTTP (Starlette's TestClient), its store, export, stats and selection."""

from __future__ import annotations

import json
import random

import pytest
from starlette.testclient import TestClient

from rlhf_gym.cli import main
from rlhf_gym.errors import ConfigError, DataError
from rlhf_gym.feedback.app import COOKIE, create_app
from rlhf_gym.feedback.export import export_rows
from rlhf_gym.feedback.items import Item, read_items
from rlhf_gym.feedback.select import disagreement, select_next
from rlhf_gym.feedback.stats import cohen_kappa, label_stats
from rlhf_gym.feedback.store import LabelStore
from rlhf_gym.rewards.preferences import load_preferences

XSS = "<script>alert(1)</script><b>bold</b> & <img src=x onerror=alert(2)>"
ITEMS = [Item("The movie was", (" great fun.", XSS), task="sentiment"),
         Item("The food was", (" lovely.", " awful and cold.")),
         Item("Rank these:", (" one", " two", " three"), kind="ranking")]


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "labels.sqlite")
    s.add_items(ITEMS)
    return s


def client_for(store, name, **kw):
    token = store.add_annotator(name)
    client = TestClient(create_app(store, **{"shuffle": False, **kw}), follow_redirects=False)
    client.cookies.set(COOKIE, token)
    return client, token


def label(client, item_id, **fields):
    return client.post("/label", data={"item_id": str(item_id), "shown": "0", **fields})


def test_pairs_file_errors_name_the_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "a", "candidate1": "x", "candidate2": "y"}\n\n{"prompt": "a", "candidate1": "x"}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:3: missing field 'candidate2'"):
        read_items(path)
    path.write_text('{"prompt": "a", "candidates": ["x"]}\n')
    with pytest.raises(DataError, match=r":1: field 'candidates' must be a list of 2"):
        read_items(path)
    path.write_text('{"prompt": "a", "candidate1": "x", "candidate2": "y", "colour": 1}\n')
    with pytest.raises(DataError, match=r":1: unknown field 'colour'"):
        read_items(path)
    path.write_text('{"prompt": "a", "candidate1": "x", "candidate2": "x"}\n')
    with pytest.raises(DataError, match=r":1: two candidates are the same"):
        read_items(path)
    path.write_text("not json\n")
    with pytest.raises(DataError, match=r":1: not valid JSON"):
        read_items(path)


def test_same_rows_are_added_once(store):
    assert store.add_items(ITEMS) == 0
    assert len(store.items()) == 3


def test_requests_without_a_valid_token_are_refused(store):
    store.add_annotator("alice")
    client = TestClient(create_app(store), follow_redirects=False)
    assert client.get("/", headers={"accept": "text/html"}).headers["location"] == "/login"
    for path in ("/", "/labels", "/labels.jsonl", "/item/1", "/guidelines"):
        assert client.get(path).status_code == 401, path
    assert client.post("/label", data={"item_id": "1", "choice": "a"}).status_code == 401
    client.cookies.set(COOKIE, "not-a-token")
    assert client.get("/labels.jsonl").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert store.labels() == []


def test_login_form_and_query_token_set_a_cookie(store):
    token = store.add_annotator("alice")
    client = TestClient(create_app(store), follow_redirects=False)
    assert client.post("/login", data={"token": "nope"}).status_code == 401
    response = client.post("/login", data={"token": token})
    assert response.status_code == 303 and COOKIE in response.cookies
    assert "httponly" in response.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200
    fresh = TestClient(create_app(store), follow_redirects=False)
    response = fresh.get(f"/guidelines?token={token}&x=1", headers={"host": "evil.example"})
    assert response.status_code == 303 and response.headers["location"] == "/guidelines?x=1"  # token gone, same host
    assert fresh.get("/guidelines").status_code == 200
    location = fresh.get(f"//evil.example/?token={token}").headers["location"]
    assert location.startswith("/") and not location.startswith("//")  # never off-site


def test_model_text_is_escaped_and_scripts_are_refused_by_csp(store):
    client, _ = client_for(store, "alice")
    page = client.get("/item/1")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; &amp; &lt;img" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'nonce-" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert page.text.count("<script") == 1  # only the page's own, nonced
    label(client, 1, choice="a", feedback=XSS)
    assert XSS not in client.get("/labels").text


def test_labels_pairs_and_rankings_with_feedback(store):
    client, _ = client_for(store, "alice")
    assert label(client, 1, choice="b", feedback="  why  ", edited="better").status_code == 303
    assert label(client, 3, ranking="3,1,2").status_code == 303
    assert label(client, 2, choice="maybe").status_code == 400
    assert label(client, 3, ranking="1,1,2").status_code == 400
    assert label(client, 99, choice="a").status_code == 400
    assert label(client, "x", choice="a").status_code == 400
    labels = {lab.item_id: lab for lab in store.labels()}
    assert labels[1].choice == "b" and labels[1].feedback == "why" and labels[1].edited == "better"
    assert labels[3].ranking == (2, 0, 1)
    assert label(client, 1, choice="tie").status_code == 303  # a second answer replaces the first
    assert [lab.choice for lab in store.labels() if lab.item_id == 1] == ["tie"]


def test_progress_and_done(store):
    client, _ = client_for(store, "alice")
    assert "You have labelled 0 · 3 left for you" in client.get("/").text
    for i in (1, 2):
        label(client, i, choice="a")
    label(client, 3, ranking="1,2,3")
    page = client.get("/")
    assert "Nothing left to label" in page.text and "labelled 3 items" in page.text


def test_an_annotator_cannot_read_or_change_anothers_labels(store):
    alice, _ = client_for(store, "alice", overlap=2)
    bob, _ = client_for(store, "bob", overlap=2)
    label(alice, 1, choice="a", feedback="alice's secret reason")
    label(bob, 1, choice="b", annotator="alice", annotator_id="1")  # form fields cannot name someone else
    mine = [json.loads(line) for line in bob.get("/labels.jsonl").text.splitlines()]
    assert [(r["item_id"], r["choice"]) for r in mine] == [(1, "b")]
    assert "alice's secret reason" not in bob.get("/labels").text
    assert "alice's secret reason" not in bob.get("/item/1").text
    assert {(lab.annotator, lab.choice) for lab in store.labels()} == {("alice", "a"), ("bob", "b")}


def test_overlap_limits_who_sees_an_item(store):
    alice, _ = client_for(store, "alice", overlap=1)
    bob, _ = client_for(store, "bob", overlap=1)
    label(alice, 1, choice="a")
    assert label(bob, 1, choice="b").status_code == 409
    assert [lab.annotator for lab in store.labels()] == ["alice"]


def test_selection_is_uncertainty_then_random():
    scores = {1: [[0.0, 1.0], [0.0, 1.0]], 2: [[0.0, 3.0], [3.0, 0.0]], 3: [[0.0, 1.0], [0.5, 0.0]]}
    assert disagreement(scores[1]) == 0 and disagreement(scores[2]) > disagreement(scores[3]) > 0
    ids = [1, 2, 3]
    assert select_next(ids, {}, set(), overlap=1, scores=scores, mode="uncertainty") == 2
    assert select_next(ids, {}, {2}, overlap=1, scores=scores, mode="uncertainty") == 3
    assert select_next(ids, {2: 1}, set(), overlap=1, scores=scores, mode="uncertainty") == 3  # 2 is full
    assert select_next(ids, {2: 1}, set(), overlap=2, scores=scores, mode="uncertainty") == 2
    assert select_next(ids, {1: 1}, set(), overlap=2, mode="uncertainty") == 1  # equal: fill overlap first
    assert select_next(ids, {}, {1, 2, 3}, overlap=1, mode="random") is None
    picks = {select_next(ids, {}, set(), overlap=1, mode="random", rng=random.Random(s)) for s in range(30)}
    assert picks == {1, 2, 3}
    with pytest.raises(ValueError):
        select_next(ids, {}, set(), overlap=1, mode="best")


def test_app_serves_the_most_disputed_item_first(store):
    scores = {1: [[0, 1], [0, 1]], 2: [[0, 2], [2, 0]], 3: [[0, 1, 2], [0, 1, 2]]}
    client, _ = client_for(store, "alice", mode="uncertainty", scores=scores)
    assert 'name="item_id" value="2"' in client.get("/").text


def _labelled(store):
    alice, _ = client_for(store, "alice", overlap=2)
    bob, _ = client_for(store, "bob", overlap=2)
    label(alice, 1, choice="a")
    label(alice, 2, choice="tie")
    label(alice, 3, ranking="2,1,3")
    label(bob, 1, choice="a")
    label(bob, 2, choice="both_bad")
    return store


def test_export_formats_load_in_reward_train(store, tmp_path):
    _labelled(store)
    rows = export_rows(store, "chosen_rejected")
    assert rows[0] == {"prompt": "The movie was", "chosen": " great fun.", "rejected": XSS}
    assert len(rows) == 5  # 2 decisive pairs + 3 pairs from the ranking; the tie and "both bad" dropped
    pairs = load_preferences(rows)
    assert (pairs[1].chosen, pairs[1].rejected, round(pairs[1].weight, 3)) == (" two", " one", 0.333)
    kept = export_rows(store, "chosen_rejected", keep_ties=True, keep_both_bad=True)
    assert sum(r.get("tie", False) for r in kept) == 2 and sum(p.tie for p in load_preferences(kept)) == 2
    seed = export_rows(store, "seed002", keep_ties=True)
    assert seed[0] == {"input_text": "The movie was", "candidate1": " great fun.", "candidate2": XSS,
                       "human_preference": 1}
    assert any(r["human_preference"] == "tie" for r in seed)
    assert [(p.chosen, p.tie) for p in load_preferences(seed)][:2] == [(" great fun.", False), (" lovely.", True)]
    ranking = export_rows(store, "ranking")
    assert {"prompt": "Rank these:", "completions": [" two", " one", " three"]} in ranking
    assert len(load_preferences(ranking)) == 5
    assert export_rows(store, "chosen_rejected", annotator="bob") == [rows[0]]
    with pytest.raises(ConfigError, match="ranking cannot hold a tie"):
        export_rows(store, "ranking", keep_ties=True)
    with pytest.raises(ConfigError, match="no such annotator"):
        export_rows(store, "ranking", annotator="carol")


def test_export_cli_and_its_errors(store, tmp_path, capsys):
    _labelled(store)
    out = tmp_path / "prefs.jsonl"
    assert main(["label", "export", "--db", str(store.path), "--format", "seed002", "--out", str(out)]) == 0
    assert len(load_preferences(out)) == 5
    assert main(["label", "export", "--db", str(tmp_path / "none.sqlite"), "--format", "seed002",
                 "--out", str(tmp_path / "x.jsonl")]) == 2
    assert main(["label", "export", "--db", str(store.path), "--format", "ranking", "--keep-ties",
                 "--out", str(tmp_path / "y.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "error: --db" in err and "no such label database" in err and "Traceback" not in err
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()
    (tmp_path / "junk.sqlite").write_text("not sqlite at all, just text that is long enough" * 10)
    assert main(["label", "stats", "--db", str(tmp_path / "junk.sqlite")]) == 2
    assert "not a label database" in capsys.readouterr().err


def test_stats_counts_agreement_and_gold(store, capsys):
    _labelled(store)
    stats = label_stats(store)
    assert stats["annotators"]["alice"]["labels"] == 3 and stats["annotators"]["bob"]["both_bad"] == 1
    assert stats["annotators"]["alice"]["median_seconds"] is not None
    assert stats["kappa"] == [{"a": "alice", "b": "bob", "shared": 2, "kappa": pytest.approx(cohen_kappa(["a", "tie"], ["a", "both_bad"]))}]
    assert stats["alpha"] is not None and -1 <= stats["alpha"] <= 1
    # item 1 names the sentiment task: VADER scores " great fun." above the markup, so "a" agrees with gold
    assert stats["gold"] == {"alice": {"agreement": 1.0, "compared": 1}, "bob": {"agreement": 1.0, "compared": 1}}
    assert main(["label", "stats", "--db", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "Krippendorff" in out and "Cohen's kappa" in out
    assert out.strip().splitlines()[-1].startswith("RESULT labels=5 items=3 alpha=")


def test_kappa_matches_hand_computation():
    assert cohen_kappa(["a", "b"], ["a", "b"]) == 1.0
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None
    assert cohen_kappa(["a", "b", "a", "b"], ["b", "a", "b", "a"]) == -1.0


def test_annotators_cli(tmp_path, capsys):
    db = str(tmp_path / "l.sqlite")
    assert main(["label", "annotators", "add", "alice", "--db", db]) == 0
    token = capsys.readouterr().out.strip()
    assert LabelStore(db).annotator_for(token).name == "alice"
    assert token not in (tmp_path / "l.sqlite").read_bytes().decode("latin-1")  # only its digest is stored
    assert main(["label", "annotators", "add", "alice", "--db", db]) == 2
    assert main(["label", "annotators", "add", "no spaces!", "--db", db]) == 2
    assert main(["label", "annotators", "list", "--db", db]) == 0
    assert "alice" in capsys.readouterr().out


def test_serve_refuses_bad_input_before_serving(tmp_path, capsys):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "a", "candidate1": "x", "candidate2": "y"}\n{"prompt": "a"}\n')
    db = tmp_path / "l.sqlite"
    assert main(["label", "serve", "--pairs", str(bad), "--db", str(db)]) == 2
    assert "pairs.jsonl:2: missing field 'candidate1'" in capsys.readouterr().err
    assert not db.exists()  # nothing half-written
    bad.write_text('{"prompt": "a", "candidate1": "x", "candidate2": "y", "task": "no-such-task"}\n')
    assert main(["label", "serve", "--pairs", str(bad), "--db", str(db)]) == 2
    assert "unknown task 'no-such-task'" in capsys.readouterr().err
    assert main(["label", "serve", "--db", str(db), "--select", "uncertainty"]) == 2
    assert main(["label", "serve", "--db", str(db), "--overlap", "0"]) == 2
    assert main(["label", "serve", "--db", str(db)]) == 2
    assert "does not exist yet; give --pairs" in capsys.readouterr().err and not db.exists()
    LabelStore(db)
    assert main(["label", "serve", "--db", str(db)]) == 2
    assert "holds no items" in capsys.readouterr().err


def test_sample_writes_pairs_that_serve_reads(tmp_path, capsys):
    out = tmp_path / "pairs.jsonl"
    assert main(["label", "sample", "--policy", "start", "--task", "sentiment", "--n", "3", "--out", str(out)]) == 0
    items = read_items(out)
    assert 1 <= len(items) <= 3 and all(it.task == "sentiment" and it.kind == "pair" for it in items)
    assert main(["label", "sample", "--policy", "start", "--policy", "b=start", "--task", "sentiment", "--n", "2",
                 "--out", str(out)]) == 0
    assert all(set(it.meta) == {"policy1", "policy2"} for it in read_items(out))
    bad = tmp_path / "bad.jsonl"
    assert main(["label", "sample", "--policy", str(tmp_path / "nowhere"), "--task", "sentiment",
                 "--out", str(bad)]) == 2
    assert "error: --policy " in capsys.readouterr().err and not bad.exists()


class _FakeRM:
    def __init__(self, sign: float):
        self.sign = sign

    def score(self, prompts, completions):
        return [self.sign * len(c) for c in completions]


def test_item_scores_feed_uncertainty_selection(store):
    from rlhf_gym.cli.label import item_scores

    scores = item_scores(store, [_FakeRM(1.0), _FakeRM(-1.0)])
    assert scores[2] == [[8.0, 16.0], [-8.0, -16.0]] and len(scores[3][0]) == 3
    ids = [s.id for s in store.items()]
    assert select_next(ids, {}, set(), overlap=1, scores=scores, mode="uncertainty") == 1  # the widest length gap


def test_serve_refuses_a_bad_reward_model_before_writing(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "a", "candidate1": "x", "candidate2": "y"}\n')
    db = tmp_path / "l.sqlite"
    assert main(["label", "serve", "--pairs", str(pairs), "--db", str(db), "--reward-models", str(tmp_path)]) == 2
    assert "error: " in capsys.readouterr().err and not db.exists()


@pytest.mark.parametrize("command", [[], ["serve"], ["annotators"], ["export"], ["stats"], ["sample"]])
def test_every_label_command_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as e:
        main(["label", *command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"rlhf-gym label {command[0] if command else ''}" in out


def test_edited_answers_export_as_preferred_pairs(store):
    client, _ = client_for(store, "alice")
    label(client, 2, choice="both_bad", edited="warm and\r\ntasty.")  # typed without the leading space
    label(client, 3, ranking="1,2,3", edited=" one")  # the same text as a candidate gives no pair with it
    assert [lab.edited for lab in store.labels()] == ["warm and\ntasty.", " one"]
    assert len(export_rows(store, "chosen_rejected")) == 3  # no edits unless asked
    rows = export_rows(store, "chosen_rejected", edits=True)
    edits = [r for r in rows if r["chosen"] == " warm and\ntasty."]
    assert [(r["rejected"], r["weight"]) for r in edits] == [(" lovely.", 0.5), (" awful and cold.", 0.5)]
    assert len(rows) == 3 + 2 + 2 and len(load_preferences(rows)) == 7
    seed = export_rows(store, "seed002", edits=True)
    assert sum(r["candidate1"] == " warm and\ntasty." and r["human_preference"] == 1 for r in seed) == 2
    with pytest.raises(ConfigError, match="--edits needs a pair format"):
        export_rows(store, "ranking", edits=True)


def test_shuffled_sides_are_stored_in_the_files_order(store):
    from rlhf_gym.feedback.app import display_order

    tokens = [store.add_annotator(f"ann{i}") for i in range(6)]
    orders = {tuple(display_order(1, store.annotator_for(t).id, 2)) for t in tokens}
    assert orders == {(0, 1), (1, 0)}  # some annotators see candidate 2 on the left
    app = create_app(store, overlap=99)  # shuffle is the default
    for token in tokens:
        who = store.annotator_for(token)
        client = TestClient(app, follow_redirects=False)
        client.cookies.set(COOKIE, token)
        page, order = client.get("/item/1").text, display_order(1, who.id, 2)
        assert (page.index("great fun.") < page.index("&lt;script")) == (order == [0, 1])
        label(client, 1, choice="a")  # the left one, whichever it is
        label(client, 3, ranking="1,2,3")  # shown positions, best first
        mine = {lab.item_id: lab for lab in store.labels(who.id)}
        assert mine[1].choice == "ab"[order[0]]
        assert list(mine[3].ranking) == display_order(3, who.id, 3)
