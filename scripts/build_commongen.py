"""Build the commongen task's tokenizer and tiny GPT-2 (``rlhf_gym/assets/tiny-commongen-gpt2``).

    python scripts/build_commongen.py --threads 1

The corpus is the task's pretraining text (:func:`rlhf_gym.tasks.commongen.pretraining_text`): a train
prompt ``"Words: ball, dog, park. Sentence:"`` followed by a sentence of the grammar that keeps each listed
word with probability 0.5, the rest of the sentence drawn at random. That is deliberate: the starting
policy must be *middling* for RL to have something to do. It learns to write fluent sentences and to copy
listed words, but covers only about half of them, so its held-out gold at temperature 1 is about 0.5 while
some of its samples (one in eight keeps all three words) reach about 1: best-of-n and PPO have headroom.

Steps reuse ``scripts/build_world.py``: a byte-level BPE tokenizer, a small ``GPT2LMHeadModel`` pretrained
on ``text + eos``, assets swapped in atomically. Then held-out eval prompts are sampled at temperature 1 and
scored by the gold judge. The last line is ``RESULT gold=... coverage=... fluency=... params=...
size_mb=... seconds=...``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_world import (
    build_model,  # noqa: E402
    encode,
    pretrain,
    sample_continuations,
    save_assets,
    seed_everything,
    train_tokenizer,
)

from rlhf_gym.core.models import ASSETS_DIR, load_causal_lm, load_tokenizer  # noqa: E402
from rlhf_gym.tasks.commongen import (  # noqa: E402
    MAX_NEW_TOKENS,
    CommonGenGold,
    commongen_prompts,
    parse_concepts,
    pretraining_text,
)
from rlhf_gym.tasks.commongen_world import words_of  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / "tiny-commongen-gpt2")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model's init, batch order and samples")
    parser.add_argument("--n-texts", type=int, default=40_000, help="pretraining corpus size")
    parser.add_argument("--n-samples", type=int, default=256, help="held-out prompts to continue")
    parser.add_argument("--vocab-size", type=int, default=768)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-layer", type=int, default=3)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args()


def evaluate(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast, n: int, seed: int,
             ) -> tuple[float, float, float]:
    """Mean gold, coverage and fluency of one temperature-1 sample per held-out prompt."""
    torch.manual_seed(seed)
    prompts = commongen_prompts("eval", n)
    completions, eos_rate = sample_continuations(model, tokenizer, prompts)
    gold = CommonGenGold()
    scores = gold.score(prompts, completions)
    coverage = [gold.coverage(parse_concepts(p), words_of(c)) for p, c in zip(prompts, completions)]
    fluency = [gold.fluency(c, words_of(c)) if words_of(c) else 0.0 for c in completions]
    print(f"  {n} held-out samples: gold {scores.mean():.3f} ± {scores.std():.3f}, "
          f"{eos_rate:.0%} ended with EOS within {MAX_NEW_TOKENS} tokens")
    for prompt, completion, score in list(zip(prompts, completions, scores.tolist()))[:8]:
        print(f"    {score:.2f}  {prompt} ||{completion}")
    return scores.mean().item(), sum(coverage) / n, sum(fluency) / n


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    started = time.time()
    texts = pretraining_text(args.n_texts, seed=0)
    tokenizer = train_tokenizer(texts, args.vocab_size)
    ids = encode(tokenizer, texts)
    n_tokens = sum(len(s) for s in ids)
    print(f"{len(texts)} texts, vocab {len(tokenizer)}, {n_tokens / len(ids):.1f} tokens per text")
    model = build_model(tokenizer, args, n_positions=64, max_new_tokens=MAX_NEW_TOKENS)
    params = sum(p.numel() for p in model.parameters())
    print(f"pretraining GPT-2 ({args.n_layer} layers, {args.n_embd} dims, {params} parameters)")
    pretrain(model, ids, args, tokenizer.pad_token_id)
    size_mb = save_assets(model, tokenizer, args.out)
    if size_mb > 5:
        raise SystemExit(f"the assets take {size_mb:.1f} MB, over the 5 MB budget")
    model, tokenizer = load_causal_lm(str(args.out)), load_tokenizer(str(args.out))  # what users will load
    gold, coverage, fluency = evaluate(model, tokenizer, args.n_samples, args.seed)
    seconds = time.time() - started
    print(f"RESULT gold={gold:.3f} coverage={coverage:.3f} fluency={fluency:.3f} params={params} "
          f"size_mb={size_mb:.3f} seconds={seconds:.0f}")


if __name__ == "__main__":
    main()
