"""``rlhf-gym label serve|annotators|export|stats``: people label comparisons and rankings in a web app.

Bad input (a malformed pairs row, an unknown annotator, a busy port) is one ``error: ...`` line and exit
code 2, before anything is written or served.
"""

from __future__ import annotations

import argparse
import os
import socket
import textwrap

from rich.console import Console
from rich.table import Table

from rlhf_gym.errors import ConfigError

LABEL_EPILOG = """\
examples (docs/feedback.md):
  rlhf-gym label sample --policy start --task sentiment --n 200 --out pairs.jsonl
  rlhf-gym label annotators add alice --db labels.sqlite
  rlhf-gym label serve --pairs pairs.jsonl --db labels.sqlite
  rlhf-gym label export --db labels.sqlite --format chosen_rejected --out prefs.jsonl
  rlhf-gym label stats --db labels.sqlite
"""

SERVE_EPILOG = """\
examples:
  rlhf-gym label annotators add alice --db labels.sqlite     # prints alice's token
  rlhf-gym label serve --pairs pairs.jsonl --db labels.sqlite
  rlhf-gym label serve --pairs pairs.jsonl --db labels.sqlite --overlap 3 --reward-models runs/rm1 runs/rm2

pairs.jsonl rows: {"prompt": ..., "candidate1": ..., "candidate2": ...} or {"prompt": ..., "candidates": [...]}
(a ranking), optionally with "task": NAME (a registered task, for gold agreement in `label stats`) and
"meta": {...} (kept, never shown). Annotators open http://HOST:PORT/?token=TOKEN or log in with the token.
"""

SAMPLE_EPILOG = """\
examples:
  rlhf-gym label sample --policy start --task sentiment --n 200 --out pairs.jsonl
  rlhf-gym label sample --policy start --policy ppo=runs/ppo --task sentiment --n 100 --out pairs.jsonl
"""

EXPORT_EPILOG = """\
examples:
  rlhf-gym label export --db labels.sqlite --format chosen_rejected --out prefs.jsonl
  rlhf-gym label export --db labels.sqlite --format seed002 --out prefs.jsonl --keep-ties --annotator alice
  rlhf-gym reward train --prefs prefs.jsonl --out runs/rm

a kept tie (or "both bad") becomes {"tie": true} in chosen_rejected and human_preference "tie" in seed002;
the trainer then pushes the two rewards together. The ranking format cannot hold ties.
"""


def register(sub: argparse._SubParsersAction) -> None:
    label = sub.add_parser("label", help="a web app where people compare or rank continuations; export and agreement",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=LABEL_EPILOG,
                           description="Human labels: serve (the web app), annotators (tokens), export (preference "
                           "files `reward train` reads), stats (agreement). Each has its own --help.")
    commands = label.add_subparsers(dest="label_command", metavar="SUBCOMMAND", required=True)

    p = commands.add_parser("serve", help="serve the labelling app", formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=SERVE_EPILOG, description=textwrap.fill(
                                "Serves the labelling app: each annotator, logged in with their token, compares two "
                                "continuations (A, B, tie, both bad) or ranks several, optionally with written "
                                "feedback or a better answer. Every label is committed to the SQLite file (WAL) "
                                "before the page answers.", 100))
    p.add_argument("--pairs", metavar="FILE", help="JSONL rows to label, added to the database (rows already there "
                   "are not added twice); optional once the database holds items")
    p.add_argument("--db", required=True, metavar="FILE", help="SQLite label database (created if missing)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--overlap", type=int, default=1, metavar="K", help="annotators who see each item (default 1)")
    p.add_argument("--select", choices=("uncertainty", "random"), default=None,
                   help="which item comes next: where the --reward-models disagree most, or at random "
                        "(default: uncertainty with --reward-models, random without)")
    p.add_argument("--reward-models", nargs="+", default=None, metavar="DIR",
                   help="reward-model directories (`rlhf-gym reward train --out`) whose disagreement picks items")
    p.add_argument("--seed", type=int, default=None, help="seed of the random selection")
    p.add_argument("--no-shuffle", action="store_true",
                   help="show candidates in the file's order (default: each annotator sees each item's candidates "
                        "in an order of their own, so no text is always on the left; labels are stored in the "
                        "file's order either way)")
    p.set_defaults(func=run_serve)

    ann = commands.add_parser("annotators", help="create annotators (tokens) or list them",
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="examples:\n  rlhf-gym label annotators add alice --db labels.sqlite   # prints the token"
                                     "\n  rlhf-gym label annotators list --db labels.sqlite\n",
                              description="add NAME prints the new annotator's token once (only a digest is "
                              "stored); list shows names and label counts.")
    ann_sub = ann.add_subparsers(dest="annotators_command", metavar="ACTION", required=True)
    add = ann_sub.add_parser("add", help="create an annotator and print their token")
    add.add_argument("name")
    add.add_argument("--db", required=True, metavar="FILE")
    add.set_defaults(func=run_annotators_add)
    lst = ann_sub.add_parser("list", help="list annotators and their label counts")
    lst.add_argument("--db", required=True, metavar="FILE")
    lst.set_defaults(func=run_annotators_list)

    from rlhf_gym.feedback.export import FORMATS

    exp = commands.add_parser("export", help="write the labels as a preference file for `reward train`",
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXPORT_EPILOG,
                              description=textwrap.fill(
                                  "chosen_rejected: {prompt, chosen, rejected}; seed002: {input_text, candidate1, "
                                  "candidate2, human_preference}; ranking: {prompt, completions} best first. A "
                                  "ranking label becomes its weighted pairs in the pair formats; a comparison is a "
                                  "ranking of two. Ties and 'both bad' are dropped unless kept by flag.", 100))
    exp.add_argument("--db", required=True, metavar="FILE")
    exp.add_argument("--format", required=True, choices=FORMATS)
    exp.add_argument("--out", required=True, metavar="FILE", help="JSONL file to write (replaced atomically)")
    exp.add_argument("--keep-ties", action="store_true",
                     help="keep ties: {tie: true} in chosen_rejected, human_preference 'tie' in seed002 (default: drop)")
    exp.add_argument("--keep-both-bad", action="store_true",
                     help="keep 'both bad' answers, written as ties (default: drop)")
    exp.add_argument("--annotator", metavar="NAME", help="only this annotator's labels")
    exp.add_argument("--edits", action="store_true",
                     help="also write each edited better answer as preferred over every candidate it was written "
                          "for (weight 1/K each; pair formats only)")
    exp.set_defaults(func=run_export)

    sm = commands.add_parser("sample", help="sample pairs for labelling from one or more policies on a task's prompts",
                             formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SAMPLE_EPILOG,
                             description=textwrap.fill(
                                 "Writes a pairs file for `label serve`: with one --policy, two continuations of "
                                 "each prompt by it (temperature 1); with several, one continuation by each, every "
                                 "two policies paired on every prompt (sides in random order, policy names kept "
                                 "under meta). Rows name the task, so `label stats` can report gold agreement.", 100))
    sm.add_argument("--policy", action="append", required=True, metavar="[NAME=]POLICY",
                    help="'start' (the task's model), a run directory, an agent checkpoint or a model directory; "
                         "repeat for several")
    sm.add_argument("--task", required=True, metavar="NAME", help="registered task whose training prompts are used")
    sm.add_argument("--n", type=int, default=64, metavar="N", help="prompts to sample (default 64)")
    sm.add_argument("--out", required=True, metavar="FILE", help="JSONL pairs file (replaced atomically)")
    sm.add_argument("--seed", type=int, default=0)
    sm.set_defaults(func=run_sample)

    st = commands.add_parser("stats", formatter_class=argparse.RawDescriptionHelpFormatter,
                             epilog="examples:\n  rlhf-gym label stats --db labels.sqlite\n"
                                    "  rlhf-gym label stats --db labels.sqlite --no-gold   # without the gold judges\n",
                             help="per-annotator counts and time, Krippendorff's alpha, Cohen's kappa, "
                             "gold agreement", description="Agreement over the labels in --db; gold agreement for "
                             "items whose row named a task (its gold judge scores both sides).")
    st.add_argument("--db", required=True, metavar="FILE")
    st.add_argument("--no-gold", action="store_true", help="skip the gold judges (faster)")
    st.set_defaults(func=run_stats)


def _store(path: str, create: bool = False):
    from rlhf_gym.feedback.store import LabelStore

    return LabelStore(path, create=create)


def _check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: must be 1..65535")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None


def item_scores(store, models: list) -> dict[int, list[list[float]]]:
    """Item id -> per reward model (anything with ``score(prompts, completions)``), per candidate scores."""
    items = store.items()
    prompts = [s.item.prompt for s in items for _ in s.item.candidates]
    texts = [c for s in items for c in s.item.candidates]
    out: dict[int, list[list[float]]] = {s.id: [] for s in items}
    for model in models:
        values = [float(v) for v in model.score(prompts, texts)]
        at = 0
        for s in items:
            k = len(s.item.candidates)
            out[s.id].append(values[at:at + k])
            at += k
    return out


def run_serve(args: argparse.Namespace) -> int:
    from rlhf_gym.feedback.items import read_items
    from rlhf_gym.tasks import get_task

    if args.overlap < 1:
        raise ConfigError(f"--overlap {args.overlap}: must be at least 1")
    mode = args.select or ("uncertainty" if args.reward_models else "random")
    if mode == "uncertainty" and not args.reward_models:
        raise ConfigError("--select uncertainty needs --reward-models DIR... (two or more disagree usefully)")
    _check_port(args.host, args.port)
    items = read_items(args.pairs) if args.pairs else []
    if not items and not os.path.isfile(args.db):
        raise ConfigError(f"--db {args.db} does not exist yet; give --pairs FILE with the rows to label")
    for task in sorted({it.task for it in items if it.task}):
        try:
            get_task(task)
        except ConfigError as e:
            raise ConfigError(f"--pairs {args.pairs}: field 'task': {e}") from None
    models = []
    if args.reward_models:
        from rlhf_gym.rewards.learned import LearnedReward

        models = [LearnedReward(path) for path in args.reward_models]  # a bad directory fails before any write
    store = _store(args.db, create=True)
    added = store.add_items(items)
    total = len(store.items())
    if not total:
        raise ConfigError(f"--db {args.db} holds no items to label; give --pairs FILE")
    scores = item_scores(store, models) if models else None
    import uvicorn

    from rlhf_gym.feedback.app import create_app

    app = create_app(store, overlap=args.overlap, mode=mode, scores=scores, seed=args.seed,
                     shuffle=not args.no_shuffle)
    print(f"{total} items ({added} new), {len(store.annotators())} annotators, selection {mode}, overlap {args.overlap}")
    if not store.annotators():
        print(f"no annotators yet: rlhf-gym label annotators add NAME --db {args.db}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host} accepts connections from other machines, over plain HTTP (tokens "
              "travel in cookies): use a trusted network or a TLS proxy")
    print(f"serving on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    import json

    from rlhf_gym.cli.arena import resolve_policy
    from rlhf_gym.core.data import load_prompts
    from rlhf_gym.feedback.arena import battles_to_pairs, sample_battles, sample_pairs
    from rlhf_gym.io import check_output, write_text_atomic
    from rlhf_gym.tasks import get_task

    if args.n < 1:
        raise ConfigError(f"--n {args.n}: must be at least 1")
    out = check_output(args.out, "file")
    task = get_task(args.task)
    policies: dict[str, str] = {}
    for spec in args.policy:
        try:
            name, model = resolve_policy(spec, task)
        except ConfigError as e:
            raise ConfigError(str(e).replace("--policies", "--policy", 1)) from None
        if name in policies:
            raise ConfigError(f"--policy: two policies are named {name!r}; name them with NAME=POLICY")
        policies[name] = model
    prompts = load_prompts(task.train_prompts, n=args.n)
    if len(policies) == 1:
        [(name, model)] = policies.items()
        rows = sample_pairs(model, prompts, max_new_tokens=task.max_new_tokens, seed=args.seed, task=task.name,
                            meta={"policy": name})
    else:
        battles, _ = sample_battles(policies, prompts, max_new_tokens=task.max_new_tokens, seed=args.seed)
        rows = battles_to_pairs(battles, task.name, drop_identical=True)
    if not rows:
        raise ConfigError(f"every sampled pair had two identical texts; nothing written to {out}")
    write_text_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} pairs ({len(prompts)} prompts of {task.name}) -> {out}")
    print(f"label them: rlhf-gym label serve --pairs {out} --db LABELS.sqlite")
    return 0


def run_annotators_add(args: argparse.Namespace) -> int:
    token = _store(args.db, create=True).add_annotator(args.name)
    print(token)
    return 0


def run_annotators_list(args: argparse.Namespace) -> int:
    store = _store(args.db)
    counts = {}
    for lab in store.labels():
        counts[lab.annotator] = counts.get(lab.annotator, 0) + 1
    table = Table("annotator", "labels")
    for a in store.annotators():
        table.add_row(a.name, str(counts.get(a.name, 0)))
    Console().print(table)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from rlhf_gym.feedback.export import export_file

    path, n = export_file(_store(args.db), args.format, args.out, keep_ties=args.keep_ties,
                          keep_both_bad=args.keep_both_bad, annotator=args.annotator, edits=args.edits)
    print(f"{n} rows ({args.format}) -> {path}")
    return 0


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def run_stats(args: argparse.Namespace) -> int:
    from rlhf_gym.feedback.stats import label_stats

    stats = label_stats(_store(args.db), gold=not args.no_gold)
    console = Console()
    table = Table("annotator", "labels", "A", "B", "tie", "both bad", "ranking", "feedback", "edited",
                  "median s/label", "gold agreement", title=f"{stats['labels']} labels on {stats['items']} items")
    for name, row in stats["annotators"].items():
        g = stats["gold"].get(name)
        table.add_row(name, str(row["labels"]), str(row["a"]), str(row["b"]), str(row["tie"]), str(row["both_bad"]),
                      str(row["ranking"]), str(row["feedback"]), str(row["edited"]), _fmt(row["median_seconds"], 1),
                      f"{g['agreement']:.3f} ({g['compared']})" if g else "n/a")
    console.print(table)
    console.print(f"Krippendorff's alpha (nominal, comparisons): {_fmt(stats['alpha'])}")
    if stats["kappa"]:
        kt = Table("annotator", "annotator", "shared items", "Cohen's kappa", title="pairwise agreement")
        for row in stats["kappa"]:
            kt.add_row(row["a"], row["b"], str(row["shared"]), _fmt(row["kappa"]))
        console.print(kt)
    for task in stats["unknown_tasks"]:
        console.print(f"task {task!r} is not registered here: its items have no gold agreement")
    per = " ".join(f"gold_{n}={g['agreement']:.4f}" for n, g in stats["gold"].items())
    print(f"RESULT labels={stats['labels']} items={stats['items']} alpha={_fmt(stats['alpha'], 4)} {per}".rstrip())
    return 0
