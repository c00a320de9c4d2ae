"""``rlhf-gym report``: training curves (PNG) and a short markdown report of a run directory."""

from __future__ import annotations

import argparse

from rich.console import Console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="draw a run's curves (reward, gold, KL, β, entropy) and write report.md",
        description="Reads DIR/metrics.jsonl, DIR/samples.jsonl and DIR/config.yaml and writes DIR/curves.png "
        "(reward, gold reward, KL, β and entropy against generated tokens) and DIR/report.md (config summary, "
        "evaluation table, sample continuations). Works on a run that is still training.",
        epilog="example:\n  rlhf-gym train --env envs/sentiment.yaml --agent agents/ppo.yaml --out runs/ppo\n"
        "  rlhf-gym report --run runs/ppo   # then open runs/ppo/report.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", metavar="DIR", required=True, help="a run directory made by rlhf-gym train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlhf_gym.runner.report import write_report

    png, md = write_report(args.run)
    Console(highlight=False).print(f"wrote {png} and {md}")
    return 0
