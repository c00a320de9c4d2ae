"""The ``arithmetic`` task (``rlhf_gym/Arithmetic-v0``): verifiable arithmetic, an exact and sparse reward.

Prompts are small integer expressions in the style of reasoning-gym's ``chain_sum`` — chain sums of two or
three terms (``"Q: 17+15="``, ``"Q: 2-9+7="``) and a one-digit product with an addend (``"Q: 7*8+3="``) —
from a seeded generator (:func:`expression`); the policy answers with the integer (``"82"``). The gold
judge (:class:`ArithmeticGold`) scores 1.0 when the completion's leading integer is the exact value of the
prompt's expression, computed by a small parser (never ``eval``), else 0.0: the reward GRPO-style methods
were made for. We do not depend on reasoning-gym itself: it pins ten unrelated packages.

Train and eval prompts come from different seeds and from disjoint halves of the problem space: an
expression is held out when the CRC-32 of its text falls in one residue class (:func:`split_of`), so no
eval prompt is ever a training prompt, a demonstration or pretraining text. ``"arithmetic:train"`` and
``"arithmetic:eval"`` are prompt sources (:func:`rlhf_gym.core.data.register_prompt_source`).

The shipped policy, ``embedded:tiny-arith-gpt2`` (built by scripts/build_arith.py), was pretrained on
right answers to training problems (:func:`demonstrations`) and has learned to add only partly: on
held-out problems it samples the right answer about a third of the time and its misses are near misses,
so best-of-64 finds the answer for most prompts (the figures: ``rlhf-gym tasks --task arithmetic``).
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence

import torch

from rlhf_gym.core.data import register_prompt_source
from rlhf_gym.errors import ConfigError, DataError
from rlhf_gym.tasks.base import DEFAULT_METRICS, Task

__all__ = ["ARITHMETIC", "ArithmeticGold", "SEEDS", "PRETRAIN_CORRECT", "evaluate_expression", "expression",
           "split_of", "prompts", "answer_of", "demonstrations", "pretraining_texts", "leading_integer"]

#: Seeds of the prompt streams of each split (the demonstration and pretraining streams are "train"'s).
SEEDS = {"train": 7_919, "eval": 104_729, "demo": 1_299_709}
#: Stride between the streams that the ``seed`` of the factories below selects (0 = the default stream).
STREAM_STRIDE = 1009
#: An expression is an eval one when ``crc32(text) % EVAL_MODULUS == 0`` (1 in 8 of the problem space).
EVAL_MODULUS = 8
#: How often the pretraining corpus shows the right answer (the rest are near misses).
PRETRAIN_CORRECT = 0.35
MAX_NEW_TOKENS = 6  # "-999" and EOS fit, with room to spare

_TOKEN = re.compile(r"\s*(?:(\d+)|(.))")
_LEADING_INT = re.compile(r"\s*(-?[0-9]+)(?!\.[0-9]|[0-9])")
_PROMPT = re.compile(r"Q:(.{1,200})=\s*\Z", re.DOTALL)


def expression(rng: random.Random) -> str:
    """One random expression: a chain sum of 2 terms (0-20) or 3 terms (0-9), or ``a*b±c`` / ``c+a*b``."""
    kind = rng.random()
    if kind < 0.8:
        n, top = (2, 20) if kind < 0.45 else (3, 9)
        text = str(rng.randint(0, top))
        for _ in range(n - 1):
            text += rng.choice("+-") + str(rng.randint(0, top))
        return text
    product = f"{rng.randint(2, 9)}*{rng.randint(2, 9)}"
    addend = str(rng.randint(1, 9))
    return rng.choice([f"{product}+{addend}", f"{product}-{addend}", f"{addend}+{product}"])


def split_of(expression: str) -> str:
    """``"eval"`` or ``"train"``: the half of the problem space ``expression`` belongs to (fixed by its text)."""
    return "eval" if zlib.crc32(expression.encode()) % EVAL_MODULUS == 0 else "train"


def _draw(split: str, n: int, stream: int, unique: bool) -> list[str]:
    if split not in ("train", "eval", "demo"):
        raise DataError(f"unknown arithmetic split {split!r}; use arithmetic:train or arithmetic:eval")
    if n < 1:
        raise DataError(f"arithmetic: need a positive number of prompts, got {n}")
    home = "eval" if split == "eval" else "train"
    rng, out, seen = random.Random(SEEDS[split] + STREAM_STRIDE * stream), [], set()
    stall = 0  # draws since the last new prompt: past the split's size, a unique list repeats itself
    while len(out) < n and stall < 5_000:
        expr, stall = expression(rng), stall + 1
        if split_of(expr) == home and not (unique and expr in seen):
            seen.add(expr)
            out.append(expr)
            stall = 0
    return [out[i % len(out)] for i in range(n)]


def prompts(split: str, n: int) -> list[str]:
    """``n`` prompts (``"Q: 17+15="``) of ``split``, distinct while the split has that many (eval holds
    about 800); a longer list is an earlier one's first ``n``."""
    return [f"Q: {e}=" for e in _draw(split, n, 0, unique=True)]


def evaluate_expression(text: str) -> int | None:
    """The exact value of an integer expression of ``+``, ``-``, ``*`` and parentheses (usual precedence),
    or None if ``text`` is not one. A recursive-descent parser: nothing is ever ``eval``-ed.

    >>> evaluate_expression("37+45-12"), evaluate_expression("3+4*5"), evaluate_expression("-(2-9)*2")
    (70, 23, 14)
    >>> evaluate_expression("2+"), evaluate_expression("__import__('os')")
    (None, None)
    """
    tokens = []
    for number, other in _TOKEN.findall(text.strip()):
        if other and other not in "+-*()":
            return None
        tokens.append(int(number) if number else other)
    pos = 0

    def peek() -> int | str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> int | str | None:
        nonlocal pos
        pos += 1
        return tokens[pos - 1] if pos <= len(tokens) else None

    def atom() -> int:
        tok = take()
        if tok == "-":
            return -atom()
        if tok == "(":
            value = total()
            if take() != ")":
                raise ValueError
            return value
        if not isinstance(tok, int):
            raise ValueError
        return tok

    def product() -> int:
        value = atom()
        while peek() == "*":
            take()
            value *= atom()
        return value

    def total() -> int:
        value = product()
        while peek() in ("+", "-"):
            value = value + product() if take() == "+" else value - product()
        return value

    try:
        value = total()
    except (ValueError, RecursionError):
        return None
    return value if tokens and pos == len(tokens) else None


def answer_of(prompt: str) -> int | None:
    """The exact answer to a prompt ``"Q: <expression>="``, or None for anything else."""
    match = _PROMPT.match(prompt.strip()) if isinstance(prompt, str) else None
    return evaluate_expression(match.group(1)) if match else None


def leading_integer(completion: str) -> int | None:
    """The integer a completion starts with (after whitespace), or None: ``" 70"`` and ``"70 and"`` are 70;
    ``"70.5"`` and ``"the answer is 70"`` are None (a decimal is no integer; the answer must come first)."""
    match = _LEADING_INT.match(completion) if isinstance(completion, str) else None
    return int(match.group(1)) if match else None


class ArithmeticGold:
    """The gold judge: 1.0 if the completion's leading integer is the prompt's exact answer, else 0.0.
    Garbage (an unparsable prompt, a completion that does not start with an integer) scores 0, never raises.

    >>> ArithmeticGold().score(["Q: 37+45-12=", "Q: 3+4*5=", "Q: 2-9=", "Q: 37+45-12=", "hello"],
    ...                        [" 70", "23 because", "-7", "71", "5"]).tolist()
    [1.0, 1.0, 1.0, 0.0, 0.0]
    """

    name = "arithmetic_gold"

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        if len(prompts) != len(completions):
            raise DataError(f"arithmetic_gold: {len(prompts)} prompts but {len(completions)} completions")
        scores = []
        for prompt, completion in zip(prompts, completions):
            answer = answer_of(prompt)
            scores.append(float(answer is not None and leading_integer(completion) == answer))
        return torch.tensor(scores, dtype=torch.float32)

    def __repr__(self) -> str:
        return "ArithmeticGold()"


def _near_miss(answer: int, rng: random.Random) -> int:
    """A plausible wrong answer: off by 1-10, or two digits of it swapped."""
    digits = str(abs(answer))
    swaps = sorted({int(d[:i] + d[j] + d[i + 1 : j] + d[i] + d[j + 1 :]) for d in [digits]
                    for i in range(len(d)) for j in range(i + 1, len(d)) if d[i] != d[j] and (i or d[j] != "0")})
    if swaps and rng.random() < 0.25:
        return rng.choice(swaps) * (-1 if answer < 0 else 1)
    return answer + rng.choice([-1, 1]) * rng.randint(1, 10)


def _check_n(n: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{what}: need a positive number, got {n!r}")


def demonstrations(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` right ``(prompt, answer)`` pairs (``("Q: 7*8+3=", "59")``) from training problems."""
    _check_n(n, "arithmetic demonstrations")
    return [(f"Q: {e}=", str(evaluate_expression(e))) for e in _draw("demo", n, seed, unique=False)]


def pretraining_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts ``"Q: 37+45=82"`` of training problems whose answer is right with probability
    :data:`PRETRAIN_CORRECT`, else a near miss: the shipped model's pretraining corpus (and PPO-ptx's)."""
    _check_n(n, "arithmetic pretraining text")
    rng = random.Random(SEEDS["train"] * 31 + seed)
    texts = []
    for expr in _draw("train", n, seed, unique=False):
        answer = evaluate_expression(expr)
        shown = answer if rng.random() < PRETRAIN_CORRECT else _near_miss(answer, rng)
        texts.append(f"Q: {expr}={shown}")
    return texts


register_prompt_source("arithmetic", prompts)

ARITHMETIC = Task(
    name="arithmetic",
    version=0,
    description="answer integer chain sums and small products; gold = exact match (0/1), a verifiable reward",
    model="embedded:tiny-arith-gpt2",
    tokenizer=None,
    train_prompts="arithmetic:train",
    eval_prompts="arithmetic:eval",
    gold=ArithmeticGold,
    annotators="3",
    max_new_tokens=MAX_NEW_TOKENS,
    demonstrations=demonstrations,
    pretraining_text=pretraining_texts,
    metrics=DEFAULT_METRICS,
)

from rlhf_gym.tasks import register_task  # noqa: E402  (the package imports this module last)

register_task(ARITHMETIC)
