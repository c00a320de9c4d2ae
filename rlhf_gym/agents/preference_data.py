"""Preference pairs as DPO trains on them: loaded or simulated, tokenised with the env's tokenizer, split, drawn.

:func:`load_pairs` reads any source :func:`rlhf_gym.rewards.preferences.load_preferences` reads (the three
formats), or ``"simulated"``: the env's task's simulated annotators (its annotator judge, its annotator spec)
over candidates sampled from the env's reference model (:func:`rlhf_gym.rewards.annotators.simulate_preferences`).
Ties are dropped. Each pair becomes a :class:`PairItem`: the prompt's tokens as the env tokenises prompts (an empty
prompt is BOS), and each completion's tokens followed by EOS when it is shorter than the env's
``max_new_tokens`` (an episode ends with EOS or at the cap). A pair that does not fit the model's context is a
one-line DataError naming the source and the pair. :class:`PairSampler` draws training pairs without replacement,
a fresh permutation from a given generator each pass, and saves its place for an exact resume.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch

from rlhf_gym.envs.engine import model_context
from rlhf_gym.errors import DataError
from rlhf_gym.rewards.annotators import (
    CandidateGenerator,
    SimulationConfig,
    parse_annotators,
    simulate_preferences,
)
from rlhf_gym.rewards.preferences import PreferencePair, load_preferences


class PairItem(NamedTuple):
    """One tokenised pair."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    weight: float
    prompt: str
    chosen: str


class _ReferenceCandidates(CandidateGenerator):
    """Candidates sampled from the env's reference with its tokenizer, judged by the task's annotator judge."""

    def __init__(self, engine: Any, seed: int):  # the env's loaded model: nothing is loaded from disk
        self.model, self.tokenizer, self.gold = engine.ref, copy.deepcopy(engine.tok), engine.task.make_annotator_judge()
        self.tokenizer.padding_side = "left"
        self.max_new_tokens, self.batch_size = engine.max_new_tokens, 64
        self.generator = torch.Generator(device=engine.device).manual_seed(seed)


def load_pairs(source: str, engine: Any, *, simulated_pairs: int = 1024, seed: int = 0) -> tuple[list[PairItem], int]:
    """The usable pairs of ``source`` for ``engine``'s tokenizer and model, and how many ties were dropped."""
    if source == "simulated":
        task = engine.task
        sim = SimulationConfig(n_comparisons=simulated_pairs, prompts=list(engine.prompts), seed=seed,
                               annotators=parse_annotators(task.annotators, temperature=task.annotator_temperature),
                               max_new_tokens=engine.max_new_tokens)
        pairs = simulate_preferences(sim, generator=_ReferenceCandidates(engine, seed), progress=False).pairs
    else:
        pairs = load_preferences(source)
    usable = [p for p in pairs if not p.tie]
    return tokenize_pairs(usable, engine, source), len(pairs) - len(usable)


def tokenize_pairs(pairs: list[PreferencePair], engine: Any, source: str) -> list[PairItem]:
    """Tokenises pairs as the env would see them (see the module docstring); checks each fits the context."""
    tok, context = engine.tok, model_context(engine.ref) or 10**9
    enc = [tok([getattr(p, k) for p in pairs], add_special_tokens=False)["input_ids"] if pairs else []
           for k in ("prompt", "chosen", "rejected")]
    items = []
    for i, (pair, prompt, *sides) in enumerate(zip(pairs, *enc)):
        prompt = prompt or [tok.bos_token_id if tok.bos_token_id is not None else engine.eos]
        sides = [s + [engine.eos] if len(s) < engine.max_new_tokens else s for s in sides]
        for name, side in zip(("chosen", "rejected"), sides):
            if len(prompt) + len(side) > context:
                raise DataError(f"{source}: pair {i}: prompt + {name} is {len(prompt) + len(side)} tokens, more "
                                f"than the model's context of {context}")
        items.append(PairItem(prompt, *sides, pair.weight, pair.prompt, pair.chosen))
    return items


def split_pairs(items: list[PairItem], eval_fraction: float) -> tuple[list[PairItem], list[PairItem]]:
    """``(train, held_out)``: a share ``eval_fraction`` held out by a permutation fixed by the data alone."""
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(0)).tolist()
    n_eval = round(eval_fraction * len(items))
    return [items[i] for i in order[n_eval:]], [items[i] for i in order[:n_eval]]


class PairSampler:
    """Draws indices of ``n`` items without replacement within a pass; a new permutation each pass."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator, self.order, self.cursor = n, generator, [], 0

    def draw(self, k: int) -> list[int]:
        """The next ``k`` indices (a batch may straddle two passes)."""
        out: list[int] = []
        while len(out) < k:
            if self.cursor >= len(self.order):
                self.order, self.cursor = torch.randperm(self.n, generator=self.generator).tolist(), 0
            take = self.order[self.cursor : self.cursor + k - len(out)]
            out, self.cursor = out + take, self.cursor + len(take)
        return out

    def state_dict(self) -> dict[str, Any]:
        """The place in the current pass (JSON)."""
        return {"order": self.order, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.order, self.cursor = [int(i) for i in state.get("order", [])], int(state.get("cursor", 0))
