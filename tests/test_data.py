"""Prompt sources: lists, files, dataset folders, and their errors."""

from __future__ import annotations

import pytest

from rlhf_gym.core.data import load_prompts
from rlhf_gym.errors import DataError


def test_text_and_jsonl_files(tmp_path):
    (tmp_path / "p.txt").write_text("first prompt\n\nsecond prompt\n")
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n{"text": "b"}\n')
    assert load_prompts(tmp_path / "p.txt") == ["first prompt", "second prompt"]
    assert load_prompts(str(tmp_path / "p.jsonl"), n=1) == ["a"]


def test_local_dataset_folder_cuts_long_texts(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["one two three four five", "six seven"]})}) \
        .save_to_disk(tmp_path / "imdb_like")
    assert load_prompts(str(tmp_path / "imdb_like"), prompt_words=3) == ["one two three", "six seven"]
    with pytest.raises(DataError, match="has no column 'review'"):
        load_prompts(str(tmp_path / "imdb_like"), column="review")


@pytest.mark.parametrize(
    "content, name, match",
    [
        (None, "missing.txt", "does not exist"),
        ("", "empty.txt", "holds no prompts"),
        (b"\xff\xfe\x00bad", "binary.txt", "is not UTF-8 text"),
        ('{"prompt": "a"}\nnot json\n', "bad.jsonl", "bad.jsonl:2: not valid JSON"),
        ('{"prompt": 3}\n', "num.jsonl", "num.jsonl:1: expected an object with a string 'prompt'"),
    ],
)
def test_bad_prompt_files(tmp_path, content, name, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=match):
        load_prompts(path)


def test_unknown_embedded_split():
    with pytest.raises(DataError, match="unknown embedded prompt split 'test'"):
        load_prompts("embedded:test")


def test_text_files_lose_their_byte_order_mark_and_invisible_lines(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes("\ufeffthe movie was\n\u200b\u200c\n\u00a0\nthe food\n".encode())
    assert load_prompts(path) == ["the movie was", "the food"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_bytes('\ufeff{"prompt": "a"}\n\u200b\n{"text": "b"}\n'.encode())
    assert load_prompts(jsonl) == ["a", "b"]
    path.write_bytes("\ufeff\ufeffthe movie was\n".encode())  # two files concatenated (found by hypothesis)
    assert load_prompts(path) == ["the movie was"]


def test_any_sequence_of_strings_is_a_prompt_list():
    import numpy as np

    assert load_prompts(np.array(["a", "b"])) == ["a", "b"]
    assert all(type(p) is str for p in load_prompts(np.array(["a", "b"])))
    assert load_prompts(("a", "b"), n=1) == ["a"]
