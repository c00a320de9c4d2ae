"""Loading language models and tokenizers by hub name or local path, and checking they fit together.

``"embedded"`` (or ``None``) names the tiny review GPT-2 shipped in the package and ``"embedded:NAME"``
another shipped model (the folder ``rlhf_gym/assets/NAME``); anything else goes to
``from_pretrained`` unchanged, so hub names such as ``gpt2`` work for users with a network and local
directories work everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rlhf_gym.errors import ModelError

EMBEDDED = "embedded"


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Loads and saves without transformers' progress bars ("Loading weights", "Writing model shards") and
    load reports (a reward model's fresh score head is expected, not news): a library call should not draw
    them. The user's settings are restored afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


#: The package's folder of shipped models (``"embedded:NAME"`` is ``ASSETS_DIR / NAME``).
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


def resolve_model_path(name_or_path: str | Path | None) -> str:
    """Maps ``None``/``"embedded"`` to the shipped tiny review model's directory and ``"embedded:NAME"`` to
    ``assets/NAME`` (a ModelError if the package ships no such model); returns anything else as a string."""
    if name_or_path is None or str(name_or_path) == EMBEDDED:
        from rlhf_gym.core.world import EMBEDDED_MODEL_DIR

        return str(EMBEDDED_MODEL_DIR)
    name = str(name_or_path)
    if name.startswith(EMBEDDED + ":"):
        folder = ASSETS_DIR / name.partition(":")[2]
        if not (folder / "config.json").is_file():
            shipped = sorted(p.name for p in ASSETS_DIR.iterdir() if (p / "config.json").is_file())
            raise ModelError(f"model {name!r}: the package ships no such model (shipped: "
                             f"{', '.join('embedded:' + s for s in shipped)})")
        return str(folder)
    return name


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).exists()


def load_tokenizer(name_or_path: str | Path | PreTrainedTokenizerBase | None = None) -> PreTrainedTokenizerBase:
    """Loads a tokenizer and makes sure it has a pad token (the EOS token when it has none)."""
    if isinstance(name_or_path, PreTrainedTokenizerBase):
        tok = name_or_path
    else:
        path = resolve_model_path(name_or_path)
        if _looks_local(path) and not Path(path).expanduser().is_dir():
            raise ModelError(f"tokenizer path {path} does not exist")
        try:
            with quiet_transformers():
                tok = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load tokenizer {path!r}: {str(e).splitlines()[0]}") from e
    if tok.eos_token_id is None:
        raise ModelError(f"tokenizer {tok.name_or_path!r} has no EOS token; episodes need one to end")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(
    name_or_path: str | Path | PreTrainedModel | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> PreTrainedModel:
    """Loads any HF causal LM (hub name, local directory, or an already built model) in eval mode.

    A LoRA adapter directory (``adapter_config.json``, as LoRA agents save ``policy/``) loads as its base
    model plus the adapter, a ``peft.PeftModel``. A model loaded by name or path gets :func:`fuse_gelu`; a
    model object passed in is used as it is.
    """
    if isinstance(name_or_path, PreTrainedModel):
        model = name_or_path
    else:
        path = resolve_model_path(name_or_path)
        if _looks_local(path) and not Path(path).expanduser().is_dir():
            raise ModelError(f"model path {path} does not exist")
        if (Path(path).expanduser() / "adapter_config.json").is_file():  # a LoRA checkpoint's policy/
            from rlhf_gym.core.lora import load_lora_model

            return load_lora_model(Path(path).expanduser(), device=device, dtype=dtype)
        try:
            with quiet_transformers():
                model = fuse_gelu(AutoModelForCausalLM.from_pretrained(path, **({"dtype": dtype} if dtype else {})))
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load causal LM {path!r}: {str(e).splitlines()[0]}") from e
    if device is not None:
        model = model.to(device)
    return model.eval()


def fuse_gelu(model: PreTrainedModel) -> PreTrainedModel:
    """Swaps GPT-2's ``gelu_new`` (tanh-approximate GELU written as seven elementwise ops) for PyTorch's fused
    kernel of the same formula, in place; the config says so, so a saved checkpoint reloads with it.

    Equal to float rounding (about 1e-7). The seven ops were about a tenth of a tiny GPT-2's update on CPU
    (``scripts/bench_update.py`` times the update with and without it); every forward, sampling included, runs it.
    """
    from transformers.activations import NewGELUActivation

    fused = False
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) is NewGELUActivation:
                setattr(module, name, torch.nn.GELU(approximate="tanh"))
                fused = True
    if fused and getattr(model.config, "activation_function", None) == "gelu_new":
        model.config.activation_function = "gelu_pytorch_tanh"
    return model


def check_vocab(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Raises ModelError unless every id the tokenizer can produce is a row of the model's embedding."""
    n_model = model.get_input_embeddings().num_embeddings
    n_tok = len(tokenizer)
    if n_tok > n_model:
        raise ModelError(
            f"tokenizer {tokenizer.name_or_path!r} has {n_tok} tokens but model "
            f"{model.config.name_or_path!r} has only {n_model} embeddings: they do not belong together"
        )


def freeze(model: PreTrainedModel) -> PreTrainedModel:
    """Puts a model in eval mode with gradients off (for the reference model)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
