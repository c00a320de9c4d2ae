"""The ``imdb`` task (``rlhf_gym/Imdb-v0``): positive continuations of IMDB reviews (Ziegler et al. 2019;
TRL's gpt2-sentiment; RL4LMs' IMDB task). A hub task: the first use downloads ``gpt2`` and the IMDB dataset.

The preset ``envs/imdb.yaml`` cuts the reviews to their first 8 words and trains on a DistilBERT sentiment
classifier's POSITIVE logit (the proxy); the gold judge reported beside it is VADER, as for ``sentiment``.
Pretraining text (PPO-ptx) is IMDB's training reviews; there are no demonstrations.
"""

from __future__ import annotations

from rlhf_gym.tasks.base import DEFAULT_METRICS, Task
from rlhf_gym.tasks.sentiment import vader_gold

__all__ = ["IMDB", "imdb_reviews"]


def imdb_reviews(n: int, seed: int = 0) -> list[str]:
    """``n`` training reviews of the IMDB dataset (downloaded from the Hugging Face hub on first use)."""
    from rlhf_gym.core.data import load_prompts

    return load_prompts("hf:imdb", split="train", n=n)


IMDB = Task(
    name="imdb",
    version=0,
    description="continue IMDB review openings positively (gpt2; hub download); gold = VADER sentiment",
    model="gpt2",
    tokenizer=None,
    train_prompts="hf:imdb",
    eval_prompts="hf:imdb",
    gold=vader_gold,
    annotators="3",
    pretraining_text=imdb_reviews,
    max_new_tokens=32,  # as envs/imdb.yaml
    metrics=DEFAULT_METRICS,
)

from rlhf_gym.tasks import register_task  # noqa: E402  (the package imports this module last)

register_task(IMDB)
