"""The experiment runner: configs, the train loop, checkpoints and resume, tracking, reports, benchmarks.

* :mod:`~rlhf_gym.runner.config` — YAML presets validated into typed dataclasses, ``--set`` overrides;
* :mod:`~rlhf_gym.runner.build` — config -> prompts, environment, gold judge, agent;
* :mod:`~rlhf_gym.runner.train` — the training loop, exact resume;
* :mod:`~rlhf_gym.runner.checkpoint` — atomic checkpoints, RNG capture;
* :mod:`~rlhf_gym.runner.tracking` — ``metrics.jsonl``, ``samples.jsonl``, W&B;
* :mod:`~rlhf_gym.runner.report` — curves and a markdown report.

Algorithms are named in one registry, :mod:`rlhf_gym.agents.registry`.

See ``docs/runner.md``.
"""


def quiet_hf_progress() -> None:
    """Turns off Hugging Face's per-file progress bars and load reports (for the CLI: saving a checkpoint every
    update would print them, and a reward model's fresh score head is expected, not news)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass
