"""Build the arithmetic task's tokenizer and tiny GPT-2 (``embedded:tiny-arith-gpt2``, shipped in the package).

    python scripts/build_arith.py --threads 1 --out rlhf_gym/assets/tiny-arith-gpt2

Steps: draw the task's pretraining corpus (:func:`rlhf_gym.tasks.arithmetic.pretraining_texts`, training
problems only), build a byte-level tokenizer with no merges (every byte is a token, so digits are single
tokens and ``=`` never fuses with a ``-`` answer across the prompt/answer boundary), pretrain a small
``GPT2LMHeadModel`` on the answers (the loss covers the answer and EOS, not the random prompt): first on
right answers (the task's demonstrations, ``--clean-fraction`` of the steps: a tiny model learns to add far
faster from clean labels), then on the noisy corpus, which calibrates it to be unsure; save, then
measure exact-match accuracy on held-out ``arithmetic:eval`` prompts, sampled at temperature 1 and greedy.

Why the start is middling: the starting policy of an RL task should know something but not everything.
The model is trained on right answers of *training* problems only (the held-out problems are never seen),
four passes over 60k texts: it learns to add well enough to answer about 43% of held-out problems greedily
and 34% when sampling at T=1 (its wrong answers are near misses), so best-of-64 finds the answer for most
prompts and RL has something to sharpen: the regime GRPO-style methods are run in. A last 1% of the corpus
is the noisy kind (``PRETRAIN_CORRECT`` right, else a near miss), as PPO-ptx's text is. Earlier tries with
one pass at lr 3e-3 (150k-180k texts, up to 40% noisy) had not learned to add (3-7% sampled accuracy).

Reuses scripts/build_world.py's tokenizer, batching, schedule and asset helpers. The last line is
``RESULT accuracy=... greedy_accuracy=... params=... size_mb=... seconds=...``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from build_world import (
    build_model,
    lr_factor,
    pad_batch,
    sample_continuations,
    save_assets,
    seed_everything,
    train_tokenizer,
)
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from rlhf_gym.core.data import load_prompts
from rlhf_gym.core.models import ASSETS_DIR
from rlhf_gym.tasks.arithmetic import MAX_NEW_TOKENS, ArithmeticGold, demonstrations, pretraining_texts

VOCAB_SIZE = 257  # the 256 bytes and EOS: no merges


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / "tiny-arith-gpt2", help="asset folder to (re)write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model's init and batch order")
    parser.add_argument("--n-texts", type=int, default=60_000, help="pretraining corpus size")
    parser.add_argument("--clean-fraction", type=float, default=0.99, help="share of texts with right answers")
    parser.add_argument("--n-eval", type=int, default=512, help="held-out prompts for the accuracies")
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-layer", type=int, default=3)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return parser.parse_args()


def encode_answers(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> list[tuple[list[int], int]]:
    """(ids of text + EOS, number of prompt tokens) per ``"Q: ...=ANSWER"`` text."""
    prompts = [t[: t.index("=") + 1] for t in texts]
    full = tokenizer(texts)["input_ids"]
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    return [(ids + [tokenizer.eos_token_id], n) for ids, n in zip(full, lengths)]


def answer_loss(model: GPT2LMHeadModel, batch: list[tuple[list[int], int]], pad_id: int) -> torch.Tensor:
    """Mean next-token NLL over the answer tokens and EOS of each text (the prompts are random)."""
    ids, mask = pad_batch([seq for seq, _ in batch], pad_id)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    for row, (_, n_prompt) in enumerate(batch):
        targets[row, : n_prompt - 1] = -100
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def pretrain(model: GPT2LMHeadModel, phases: list[list[tuple[list[int], int]]], args: argparse.Namespace,
             pad_id: int) -> None:
    """One learning-rate schedule over the phases in turn (each shuffled, ``args.epochs`` passes)."""
    generator = torch.Generator().manual_seed(args.seed)
    total = sum(math.ceil(len(data) / args.batch_size) for data in phases) * args.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args.warmup_steps, total))
    model.train()
    step, started = 0, time.time()
    for data in phases:
        for _ in range(args.epochs):
            order = torch.randperm(len(data), generator=generator).tolist()
            for start in range(0, len(order), args.batch_size):
                loss = answer_loss(model, [data[i] for i in order[start : start + args.batch_size]], pad_id)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if step % 250 == 0 or step == total:
                    print(f"  step {step}/{total} loss {loss.item():.3f} ({time.time() - started:.0f} s)", flush=True)
    model.eval()


@torch.no_grad()
def greedy(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast, prompts: list[str]) -> list[str]:
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
    out = model.generate(**batch, do_sample=False, top_k=None, top_p=None, temperature=None)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def kind(prompt: str) -> str:
    return "product" if "*" in prompt else f"sum{prompt.count('+') + prompt.count('-') + 1}"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    started = time.time()

    n_clean = int(args.clean_fraction * args.n_texts)
    clean = [p + a for p, a in demonstrations(n_clean)] if n_clean else []
    noisy = pretraining_texts(args.n_texts - n_clean)
    print(f"{len(clean)} clean then {len(noisy)} noisy pretraining texts, e.g. {noisy[:3]}")
    tokenizer = train_tokenizer(clean + noisy, VOCAB_SIZE)
    phases = [encode_answers(tokenizer, texts) for texts in (clean, noisy) if texts]
    model = build_model(tokenizer, args, n_positions=64, max_new_tokens=MAX_NEW_TOKENS)
    params = sum(p.numel() for p in model.parameters())
    print(f"pretraining GPT-2 ({args.n_layer} layers, {args.n_embd} dims, {params} parameters, vocab "
          f"{len(tokenizer)}) for {args.epochs} epochs on {args.threads} threads")
    pretrain(model, phases, args, tokenizer.pad_token_id)

    size_mb = save_assets(model, tokenizer, args.out)
    prompts = load_prompts("arithmetic:eval", n=args.n_eval)
    gold = ArithmeticGold()
    torch.manual_seed(args.seed)
    sampled, eos_rate = sample_continuations(model, tokenizer, prompts)
    accuracy = gold.score(prompts, sampled).mean().item()
    greedy_scores = gold.score(prompts, greedy(model, tokenizer, prompts))
    by_kind = Counter(kind(p) for p in prompts)
    for k in sorted(by_kind):
        rows = [i for i, p in enumerate(prompts) if kind(p) == k]
        print(f"  {k}: {len(rows)} prompts, greedy accuracy {greedy_scores[rows].mean():.3f}")
    print(f"  sampled (T=1) accuracy {accuracy:.3f}, {eos_rate:.0%} ended with EOS; e.g. "
          + ", ".join(f"{p}{c}" for p, c in zip(prompts[:6], sampled)))
    print(f"RESULT accuracy={accuracy:.3f} greedy_accuracy={greedy_scores.mean():.3f} params={params} "
          f"size_mb={size_mb:.3f} seconds={time.time() - started:.0f}")


if __name__ == "__main__":
    main()
