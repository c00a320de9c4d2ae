"""The ``rlhf-gym`` command line. Each command lives in its own module with a ``register(subparsers)``.

Bad input (a :class:`~rlhf_gym.errors.RLHFGymError`) prints one ``error: ...`` line and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from rlhf_gym.errors import RLHFGymError

COMMANDS = ["demo", "tasks", "reward", "train", "eval", "sft", "report", "bench", "iterate", "arena", "label"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhf-gym",
        description="RLHF for language models as Gymnasium environments. "
        "Start with `rlhf-gym demo`; every command has its own --help.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rlhf_gym.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"rlhf_gym.cli.{name}":
                continue  # a command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RLHFGymError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
