"""Build the embedded default world's tokenizer and tiny GPT-2 (the assets shipped in the package).

    python scripts/build_world.py --out rlhf_gym/assets/tiny-review-gpt2

Steps: generate a review corpus from ``ReviewWorld(TRAIN_SEED)``, train a byte-level BPE tokenizer on it,
pretrain a small ``GPT2LMHeadModel`` (each training text is ``review.text + eos``), save both, then
evaluate on reviews from ``ReviewWorld(EVAL_SEED)``: held-out perplexity against an add-one-smoothed
unigram baseline, sample continuations of held-out prompts and their mean VADER compound score. Takes a
few minutes on 2 CPU cores. The last line is ``RESULT perplexity=... unigram_perplexity=... params=...
size_mb=...``.

Both perplexities are per predicted token: every token of a text after its first, plus the closing EOS
(the model has no BOS, so nothing predicts a text's first token).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import AutoTokenizer, GenerationConfig, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from rlhf_gym.core.world import EMBEDDED_MODEL_DIR, EVAL_SEED, TRAIN_SEED, Review, ReviewWorld

EOS = "<|endoftext|>"
MAX_NEW_TOKENS = 40


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=EMBEDDED_MODEL_DIR, help="asset folder to (re)write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model's init and batch order")
    parser.add_argument("--n-reviews", type=int, default=40_000, help="pretraining corpus size")
    parser.add_argument("--n-eval", type=int, default=2_000, help="held-out reviews for perplexity")
    parser.add_argument("--n-samples", type=int, default=200, help="held-out prompts to continue")
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads; use 1 when other jobs share the cores, 2 threads then stall")
    return parser.parse_args()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# ---- tokenizer -----------------------------------------------------------------------------------


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style: no prefix space, the space belongs to the next word)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, pad_token=EOS,
                                   model_max_length=128)


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out: Path) -> None:
    """Save, naming the class every transformers version knows, so AutoTokenizer loads it anywhere."""
    tokenizer.save_pretrained(out)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": EOS, "eos_token": EOS, "pad_token": EOS}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def encode(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text followed by EOS."""
    return [ids + [tokenizer.eos_token_id] for ids in tokenizer(list(texts))["input_ids"]]


# ---- model ---------------------------------------------------------------------------------------


def build_model(tokenizer: PreTrainedTokenizerFast, args: argparse.Namespace, *, n_positions: int = 128,
                max_new_tokens: int = MAX_NEW_TOKENS) -> GPT2LMHeadModel:
    """A fresh GPT-2 of ``args``' size for ``tokenizer`` (also the arithmetic and commongen models')."""
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions,
        n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
        # no dropout: the data are plentiful, and RL fine-tuning wants a deterministic forward pass
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config = GenerationConfig(
        do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    return model


def pad_batch(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence: (input_ids, attention_mask)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def token_nll(model: GPT2LMHeadModel, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token negative log-likelihood over real (unpadded) targets, and their count.

    Padding is EOS too, so targets are selected by the attention mask, never by token id.
    """
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum")
    return nll, int(mask[:, 1:].sum())


def length_bucketed_batches(sequences: Sequence[list[int]], batch_size: int, generator: torch.Generator,
                            ) -> Iterator[list[list[int]]]:
    """Shuffled batches of similar-length sequences (less padding), in shuffled order."""
    order = torch.randperm(len(sequences), generator=generator).tolist()
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: len(sequences[i]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    for b in torch.randperm(len(batches), generator=generator).tolist():
        yield [sequences[i] for i in batches[b]]


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def pretrain(model: GPT2LMHeadModel, sequences: list[list[int]], args: argparse.Namespace, pad_id: int,
             ) -> None:
    generator = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = math.ceil(len(sequences) / args.batch_size)
    total = steps_per_epoch * args.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args.warmup_steps, total))
    model.train()
    progress = tqdm(total=total, desc="pretraining", unit="step", mininterval=1.0)
    for _ in range(args.epochs):
        for batch in length_bucketed_batches(sequences, args.batch_size, generator):
            nll, count = token_nll(model, *pad_batch(batch, pad_id))
            loss = nll / count
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            progress.update()
            progress.set_postfix(loss=f"{loss.item():.3f}")
    progress.close()
    model.eval()


# ---- evaluation ----------------------------------------------------------------------------------


@torch.no_grad()
def lm_perplexity(model: GPT2LMHeadModel, sequences: Sequence[list[int]], pad_id: int, batch_size: int = 64,
                  ) -> float:
    total_nll, total_count = 0.0, 0
    for start in range(0, len(sequences), batch_size):
        nll, count = token_nll(model, *pad_batch(sequences[start : start + batch_size], pad_id))
        total_nll, total_count = total_nll + nll.item(), total_count + count
    return math.exp(total_nll / total_count)


def unigram_perplexity(train: Sequence[list[int]], held_out: Sequence[list[int]], vocab_size: int) -> float:
    """Add-one-smoothed unigram fitted on all training tokens, scored on the same targets as the LM."""
    counts = torch.ones(vocab_size)
    for seq in train:
        counts += torch.bincount(torch.tensor(seq), minlength=vocab_size)
    log_probs = (counts / counts.sum()).log()
    targets = torch.tensor([t for seq in held_out for t in seq[1:]])
    return math.exp(-log_probs[targets].mean().item())


@torch.no_grad()
def sample_continuations(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast, prompts: Sequence[str],
                         batch_size: int = 50) -> tuple[list[str], float]:
    """Temperature-1 samples (left-padded batches) and the fraction that ended with EOS."""
    texts, ended = [], 0
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True,
                          padding_side="left")
        out = model.generate(**batch)
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        ended += int((new_tokens == tokenizer.eos_token_id).any(dim=1).sum())
        texts += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return texts, ended / len(prompts)


def mean_vader(texts: Sequence[str]) -> float:
    analyzer = SentimentIntensityAnalyzer()
    return sum(analyzer.polarity_scores(t)["compound"] for t in texts) / len(texts)


# ---- assets --------------------------------------------------------------------------------------

ASSET_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json"}


def save_assets(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast, out: Path) -> float:
    """Write the assets to a scratch folder, check them, then swap it in for ``out``; returns its MB."""
    if out.exists() and {p.name for p in out.iterdir()} - ASSET_FILES:
        raise SystemExit(f"{out} holds files other than the assets; not overwriting it")
    scratch = out.with_name(f".{out.name}.building")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    save_tokenizer(tokenizer, scratch)
    model.save_pretrained(scratch, safe_serialization=True)
    for path in scratch.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; package data must be world-readable
    size_mb = sum(p.stat().st_size for p in scratch.iterdir()) / 1e6
    if size_mb > 10:
        raise SystemExit(f"the assets take {size_mb:.1f} MB, over the 10 MB budget")
    AutoTokenizer.from_pretrained(scratch)  # fail here, not in a user's session, if it does not load
    shutil.rmtree(out, ignore_errors=True)
    scratch.rename(out)
    return size_mb


# ---- main ----------------------------------------------------------------------------------------


def evaluate(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast, train_ids: list[list[int]],
             held_out: Sequence[Review], args: argparse.Namespace) -> tuple[float, float]:
    """Print the held-out perplexities and sampled continuations; return (LM, unigram) perplexity."""
    eval_ids = encode(tokenizer, [r.text for r in held_out[: args.n_eval]])
    print(f"evaluating on {len(eval_ids)} held-out reviews")
    perplexity = lm_perplexity(model, eval_ids, tokenizer.pad_token_id)
    unigram = unigram_perplexity(train_ids, eval_ids, len(tokenizer))
    print(f"  perplexity {perplexity:.2f} vs unigram {unigram:.2f} (ratio {perplexity / unigram:.3f})")

    torch.manual_seed(args.seed)
    prompts = [r.prompt for r in held_out[: args.n_samples]]
    continuations, eos_rate = sample_continuations(model, tokenizer, prompts)
    print(f"  {len(prompts)} sampled continuations: mean VADER compound {mean_vader(continuations):+.3f}, "
          f"{eos_rate:.0%} ended with EOS within {MAX_NEW_TOKENS} tokens")
    for prompt, continuation in list(zip(prompts, continuations))[:8]:
        print(f"    {prompt} ||{continuation}")
    return perplexity, unigram


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    started = time.time()

    print(f"generating {args.n_reviews} training reviews from ReviewWorld(seed={TRAIN_SEED}) "
          f"and held-out reviews from ReviewWorld(seed={EVAL_SEED})")
    train_texts = [r.text for r in ReviewWorld(TRAIN_SEED).reviews(args.n_reviews)]
    held_out = ReviewWorld(EVAL_SEED).reviews(max(args.n_eval, args.n_samples))
    overlap = len({r.text for r in held_out} & set(train_texts))
    print(f"  {overlap} of {len(held_out)} held-out texts also occur in the training corpus")

    print(f"training a byte-level BPE tokenizer (target vocab {args.vocab_size})")
    tokenizer = train_tokenizer(train_texts, args.vocab_size)
    train_ids = encode(tokenizer, train_texts)
    n_tokens = sum(len(s) for s in train_ids)
    print(f"  vocab {len(tokenizer)}, {n_tokens} training tokens, {n_tokens / len(train_ids):.1f} per review")

    model = build_model(tokenizer, args)
    params = sum(p.numel() for p in model.parameters())
    print(f"pretraining GPT-2 ({args.n_layer} layers, {args.n_embd} dims, {params} parameters) "
          f"for {args.epochs} epochs on {args.threads} CPU threads")
    pretrain(model, train_ids, args, tokenizer.pad_token_id)

    print(f"saving to {args.out}")
    size_mb = save_assets(model, tokenizer, args.out)
    perplexity, unigram = evaluate(model, tokenizer, train_ids, held_out, args)
    print(f"done in {time.time() - started:.0f} s")
    print(f"RESULT perplexity={perplexity:.3f} unigram_perplexity={unigram:.3f} params={params} "
          f"size_mb={size_mb:.3f}")


if __name__ == "__main__":
    main()
