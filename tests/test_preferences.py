"""Preference data: every format from every source, K-way expansion, one-line errors, atomic saving."""

from __future__ import annotations

import csv
import json
import re

import datasets
import pytest

from rlhf_gym.errors import DataError
from rlhf_gym.rewards.preferences import PreferencePair, load_preferences, save_preferences

PAIRS_FORMAT = [
    {"prompt": "The film", "chosen": " was great.", "rejected": " was dull.", "margin": 0.5},
    {"prompt": "The plot", "chosen": " is tight.", "rejected": " is thin.", "tie": True},
]
CANDIDATES_FORMAT = [
    {
        "input_text": "The film",
        "candidate1": " was dull.",
        "candidate2": " was great.",
        "human_preference": 2,
    },
    {
        "input_text": "The plot",
        "candidate1": " is tight.",
        "candidate2": " is thin.",
        "human_preference": "tie",
    },
]
RANKING_FORMAT = [
    {"prompt": "The film", "completions": [" was great.", " was fine.", " was dull."]},
    {"prompt": "The plot", "completions": [" is tight.", " is thin."]},
]
EXPECTED = {
    "pairs": [
        PreferencePair("The film", " was great.", " was dull.", margin=0.5),
        PreferencePair("The plot", " is tight.", " is thin.", tie=True),
    ],
    "candidates": [
        PreferencePair("The film", " was great.", " was dull."),
        PreferencePair("The plot", " is tight.", " is thin.", tie=True),
    ],
    "rankings": [
        PreferencePair("The film", " was great.", " was fine.", weight=1 / 3),
        PreferencePair("The film", " was great.", " was dull.", weight=1 / 3),
        PreferencePair("The film", " was fine.", " was dull.", weight=1 / 3),
        PreferencePair("The plot", " is tight.", " is thin.", weight=1.0),
    ],
}
RECORDS = {"pairs": PAIRS_FORMAT, "candidates": CANDIDATES_FORMAT, "rankings": RANKING_FORMAT}


def write_jsonl(path, records, *, raw_lines=()):
    lines = [json.dumps(r) for r in records] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_csv(path, records):
    columns = list(dict.fromkeys(k for r in records for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in records:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    return path


def as_dataset(records):
    """Columns must have one type in a dataset: labels as strings, missing optional fields as None."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    rows = [{k: str(r[k]) if k == "human_preference" else r.get(k) for k in columns} for r in records]
    return datasets.Dataset.from_list(rows)


# ---------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", RECORDS)
@pytest.mark.parametrize("source", ["jsonl", "csv", "dataset", "save_to_disk", "datasetdict"])
def test_every_format_loads_from_every_source(fmt, source, tmp_path):
    records = RECORDS[fmt]
    if source == "jsonl":
        src = write_jsonl(tmp_path / "prefs.jsonl", records)
    elif source == "csv":
        src = write_csv(tmp_path / "prefs.csv", records)
    elif source == "dataset":
        src = as_dataset(records)
    elif source == "save_to_disk":
        as_dataset(records).save_to_disk(tmp_path / "prefs")
        src = tmp_path / "prefs"
    else:
        src = datasets.DatasetDict({"train": as_dataset(records[:1]), "test": as_dataset(records)})
        assert load_preferences(src) == load_preferences(records[:1])  # "train" by default
        assert load_preferences(src, split="test") == EXPECTED[fmt]
        return
    got = load_preferences(src)
    assert [(p.prompt, p.chosen, p.rejected, p.margin, p.tie) for p in got] == [
        (p.prompt, p.chosen, p.rejected, p.margin, p.tie) for p in EXPECTED[fmt]
    ]
    assert [p.weight for p in got] == pytest.approx([p.weight for p in EXPECTED[fmt]])


@pytest.mark.parametrize(
    "label, chosen, tie",
    [(1, " a", False), (2, " b", False), ("2", " b", False), (2.0, " b", False), ("candidate1", " a", False),
     ("Candidate2", " b", False), ("tie", " a", True), (0, " a", True), ("0", " a", True)],
)  # fmt: skip
def test_human_preference_labels(label, chosen, tie):
    record = {"input_text": "Q", "candidate1": " a", "candidate2": " b", "human_preference": label}
    (pair,) = load_preferences([record])
    assert (pair.chosen, pair.tie) == (chosen, tie)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_k_way_ranking_expands_into_all_ordered_pairs_weighted_once_per_prompt(k):
    ranked = [f" text {i}" for i in range(k)]
    pairs = load_preferences(
        [{"prompt": "P", "ranking": ranked}, {"prompt": "Q", "chosen": " x", "rejected": " y"}]
    )
    ranking_pairs = [p for p in pairs if p.prompt == "P"]
    assert len(ranking_pairs) == k * (k - 1) // 2
    assert {(p.chosen, p.rejected) for p in ranking_pairs} == {
        (ranked[i], ranked[j]) for i in range(k) for j in range(i + 1, k)
    }
    assert sum(p.weight for p in ranking_pairs) == pytest.approx(1.0)
    assert [p.weight for p in pairs if p.prompt == "Q"] == [1.0]


def test_whole_file_json_array_and_blank_lines(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(PAIRS_FORMAT, indent=2), encoding="utf-8")
    assert load_preferences(tmp_path / "a.json") == EXPECTED["pairs"]
    write_jsonl(tmp_path / "b.jsonl", PAIRS_FORMAT, raw_lines=["", "   "])
    assert load_preferences(tmp_path / "b.jsonl") == EXPECTED["pairs"]


# ---------------------------------------------------------------------------------------------- errors


def error_of(source) -> str:
    with pytest.raises(DataError) as info:
        load_preferences(source)
    message = str(info.value)
    assert "\n" not in message
    return message


GOOD = {"prompt": "P", "chosen": " good", "rejected": " bad"}


@pytest.mark.parametrize(
    "bad_record, expected",
    [
        ({"prompt": "P", "chosen": " good"}, r"missing column 'rejected' \(found: prompt, chosen\)"),
        ({"input_text": "P", "candidate1": " a", "candidate2": " b", "human_preference": "both"}, "unknown preference label 'both'"),
        ({"input_text": "P", "candidate1": " a", "candidate2": " b", "human_preference": 3}, "unknown preference label 3"),
        ({"prompt": "P", "chosen": "", "rejected": " bad"}, "column 'chosen' is empty"),
        ({"prompt": "  ", "chosen": " good", "rejected": " bad"}, "column 'prompt' is empty"),
        ({"prompt": "P", "chosen": " same", "rejected": " same"}, "both sides of the pair are the same text"),
        ({"prompt": "P", "completions": [" a", " b", " a"]}, r"completions\[0\] and \[2\]: both sides"),
        ({"prompt": "P", "completions": [" only one"]}, "at least 2 texts"),
        ({"prompt": "P", "chosen": 3, "rejected": " bad"}, "column 'chosen' must be text"),
        ({"prompt": "P", "chosen": " a", "rejected": " b", "margin": "wide"}, "column 'margin' must be a number"),
        ({"prompt": "P", "chosen": " a", "rejected": " b", "tie": "maybe"}, "column 'tie' must be true or false"),
        ({"foo": 1}, "missing columns 'prompt', 'chosen', 'rejected' \\(found: foo\\)"),
    ],
)  # fmt: skip
def test_bad_records_name_file_and_line(bad_record, expected, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [GOOD, GOOD, bad_record])
    message = error_of(path)
    assert message.startswith(f"{path}:3: ")
    assert re.search(expected, message), message


def test_identical_sides_are_fine_for_a_tie():
    (pair,) = load_preferences([{"prompt": "P", "chosen": " same", "rejected": " same", "tie": True}])
    assert pair.tie


def test_bad_csv_rows_name_the_file_line(tmp_path):
    path = tmp_path / "prefs.csv"
    path.write_text('prompt,chosen,rejected\nP,good,bad\n"multi\nline",good,bad\nP,,bad\n', encoding="utf-8")
    assert error_of(path).startswith(f"{path}:5: column 'chosen' is empty")
    path.write_text("prompt,chosen\nP,good\n", encoding="utf-8")
    assert error_of(path).startswith(f"{path}:2: missing column 'rejected' (found: prompt, chosen)")
    path.write_text("prompt,chosen,rejected\nP,good,bad,extra\n", encoding="utf-8")
    assert error_of(path).startswith(f"{path}:2: more fields than the 3 header columns")


def test_bad_dataset_rows_name_the_index(tmp_path):
    dataset = datasets.Dataset.from_list([GOOD, {"prompt": "P", "chosen": " x", "rejected": " x"}])
    assert error_of(dataset).startswith("dataset[1]: both sides")
    dataset.save_to_disk(tmp_path / "prefs")
    assert error_of(tmp_path / "prefs").startswith(f"{tmp_path / 'prefs'}[1]: both sides")


def test_files_that_are_not_json_or_csv(tmp_path):
    garbage = write_jsonl(tmp_path / "prefs.jsonl", [GOOD], raw_lines=["this is not json"])
    assert error_of(garbage).startswith(f"{garbage}:2: not valid JSON")
    binary = tmp_path / "prefs.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    assert error_of(binary) == f"{binary}: binary data, not a JSONL or CSV text file"
    prose = tmp_path / "notes.csv"
    prose.write_text("Dear diary, today I compared two texts.\nIt was fine.\n", encoding="utf-8")
    assert error_of(prose).startswith(f"{prose}:1: not a preference CSV")
    unknown = tmp_path / "prefs.txt"
    unknown.write_text("hello\n", encoding="utf-8")
    assert error_of(unknown).startswith(f"{unknown}: not a JSONL or CSV file")


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(
        b'{"prompt": "P", "chosen": " a", "rejected": " b"}\n\n{"prompt": "caf\xe9", "chosen": " a"}\n'
    )
    assert error_of(path).startswith(f"{path}:3: not valid UTF-8 (byte 0xe9)")


def test_empty_and_missing_files(tmp_path):
    for name in ("empty.jsonl", "empty.csv"):
        (tmp_path / name).write_text("\n", encoding="utf-8")
        assert "empty" in error_of(tmp_path / name)
    (tmp_path / "header.csv").write_text("prompt,chosen,rejected\n", encoding="utf-8")
    assert error_of(tmp_path / "header.csv") == f"{tmp_path / 'header.csv'}: no preference records (empty)"
    assert error_of(tmp_path / "missing.jsonl") == f"{tmp_path / 'missing.jsonl'}: no such preference file"
    assert error_of([]) == "records: no preference records (empty)"


# ---------------------------------------------------------------------------------------------- saving


def test_save_load_round_trip(tmp_path):
    pairs = load_preferences(RANKING_FORMAT) + EXPECTED["pairs"]
    pairs.append(PreferencePair("Ünïcode\u2028prompt", " ✓ yes", " ✗ no", weight=2.5, margin=-1.0))
    path = save_preferences(pairs, tmp_path / "sub" / "prefs.jsonl")
    assert load_preferences(path) == pairs
    assert [p.name for p in path.parent.iterdir()] == ["prefs.jsonl"]


def test_failed_save_leaves_nothing_behind(tmp_path):
    def pairs_then_crash():
        yield PreferencePair("P", " a", " b")
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError):
        save_preferences(pairs_then_crash(), tmp_path / "prefs.jsonl")
    assert list(tmp_path.iterdir()) == []
