"""Run configuration: YAML presets validated into typed dataclasses.

A run is described by three sections, each a dataclass with a one-line doc per field (``metadata["doc"]``):

* ``env``   — :class:`EnvConfig`: model, tokenizer, prompts, reward, β and KL, lengths (``envs/*.yaml``);
* ``agent`` — ``algo`` plus the fields of that algorithm's own config dataclass (``agents/*.yaml``);
* ``run``   — :class:`RunConfig`: budget, seed, evaluation, checkpoints (an optional ``run:`` block of
  the agent preset, or ``--set run.KEY=VALUE``).

``load_run_config(env_file, agent_file, overrides)`` reads the presets, applies ``--set`` overrides
(dotted keys parsed as YAML scalars: ``env.beta=0.1``, ``agent.learning_rate=1e-5``) and validates every
value. Bad input raises :class:`~rlhf_gym.errors.ConfigError` with one line naming the file and the field;
an unknown key suggests the nearest valid one. ``dump_config`` writes the resolved config back as
commented YAML (``DIR/config.yaml``), which ``load_resolved_config`` reads.

>>> import pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "env.yaml").write_text("{task: sentiment, beta: 0.05}")
>>> _ = (d / "agent.yaml").write_text("{algo: ppo, learning_rate: 1e-5}")
>>> cfg = load_run_config(d / "env.yaml", d / "agent.yaml", ["env.beta=0.1"])
>>> cfg.env.beta, cfg.agent.algo, cfg.agent.config.learning_rate
(0.1, 'ppo', 1e-05)
>>> load_run_config(d / "env.yaml", d / "agent.yaml", ["env.betta=0.1"])
Traceback (most recent call last):
...
rlhf_gym.errors.ConfigError: .../env.yaml (with --set): unknown key env.betta; did you mean 'beta'?
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rlhf_gym.core.yamlio import parse_yaml, read_yaml_mapping
from rlhf_gym.errors import ConfigError, RLHFGymError

SECTIONS = ("env", "agent", "run")


def opt(default: Any, doc: str, *, ge: float | None = None, gt: float | None = None,
        le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field with a one-line ``doc`` and optional bounds, checked by :func:`build_section`."""
    return field(default=default, metadata={"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt})


@dataclass
class EnvConfig:
    """The environment: what is generated from what, and how it is rewarded (``envs/*.yaml``)."""

    task: str = opt("sentiment", "a registered task or MODULE:NAME (see docs/tasks.md): its "
                    "model, prompts and gold fill the nulls below")
    model: str | None = opt(None, "reference model and policy init: 'embedded', a hub name or a local dir; null = the task's")
    tokenizer: str | None = opt(None, "tokenizer name or dir; null = the task's, else the model's")
    prompts: str | None = opt(None, "training prompts: a task source, a .txt/.jsonl file, 'hf:NAME' or a dataset dir; null = the task's")
    split: str = opt("train", "dataset split of the training prompts (hub datasets and dataset dirs)")
    eval_prompts: str | None = opt(None, "held-out evaluation prompts (same forms as prompts); null = the task's")
    eval_split: str = opt("test", "dataset split of the evaluation prompts")
    prompt_column: str | None = opt(None, "dataset column holding the prompt text; null = prompt/text/query")
    prompt_words: int | None = opt(None, "cut dataset texts to their first N words (IMDB-style prompts)", ge=1)
    n_prompts: int | None = opt(None, "keep only the first N training prompts; null = all", ge=1)
    n_eval_prompts: int | None = opt(256, "keep only the first N evaluation prompts; null = all", ge=1)
    reward: str = opt("gold", "reward the agent trains on: 'gold', a reward-model dir, or 'classifier:NAME@LABEL'")
    gold: str | None = opt("gold", "independent judge reported at evaluation (same forms as reward); null = none")
    beta: float = opt(0.05, "KL coefficient β of the penalty −β·KL(π‖π_ref) (agents may adapt it)", ge=0, le=1e6)
    kl_estimator: Literal["k1", "k2", "k3"] = opt("k1", "per-token KL estimator: k1 (log-ratio), k2 or k3")
    max_new_tokens: int = opt(24, "length cap of a continuation, in tokens", ge=1)
    min_new_tokens: int = opt(0, "EOS is refused before this many tokens (at most max_new_tokens; 0 = always allowed)", ge=0)
    max_prompt_tokens: int | None = opt(None, "longest allowed prompt in tokens; null = the longest prompt", ge=1)
    num_envs: int = opt(16, "episodes held at once by the batched environment", ge=1)

    def __post_init__(self) -> None:
        task = self.task_spec()
        if self.model is None:
            self.model = task.model
            if self.tokenizer is None:
                self.tokenizer = task.tokenizer
        if self.prompts is None:
            self.prompts = task.train_prompts
        if self.eval_prompts is None:
            self.eval_prompts = task.eval_prompts

    def task_spec(self) -> Any:
        """The :class:`~rlhf_gym.tasks.Task` this environment runs (``MODULE:NAME`` imports the module that
        registers it); an unknown name is an error, never a silent fall-back to another task."""
        from rlhf_gym.tasks import get_task

        return get_task(self.task)


@dataclass
class RunConfig:
    """How long to train and what to record (``run:`` in an agent preset, or ``--set run.KEY=VALUE``)."""

    total_timesteps: int = opt(20_000, "training budget in generated tokens", ge=1)
    seed: int = opt(0, "seeds Python, NumPy, torch and the environment", ge=0)
    device: str | None = opt(None, "torch device: 'cpu', 'cuda', 'cuda:1'...; null = CUDA when available")
    torch_threads: int | None = opt(None, "torch intra-op threads (fix it for bit-exact resume); null = torch's default", ge=1)
    eval_every: int = opt(0, "evaluate every N policy updates (0 = only at the end)", ge=0)
    eval_episodes: int = opt(64, "held-out episodes per evaluation", ge=1)
    checkpoint_every: int = opt(1, "save a checkpoint every N policy updates (0 = only at the end)", ge=0)
    keep_checkpoints: int = opt(2, "how many of the newest checkpoints to keep", ge=1)
    samples_per_update: int = opt(4, "prompt/continuation rows written to samples.jsonl per update", ge=0)
    init_agent: str | None = opt(None, "start from this agent checkpoint (a run DIR: its newest; or DIR/checkpoints/"
                                 "step-N/agent), its tokens counting towards total_timesteps; null = a fresh agent")

    def __post_init__(self) -> None:
        from rlhf_gym.core.checks import device_name

        # The spelling only ("bogus", "cuda:x" are errors here); whether this machine has the device is
        # checked when models are built, so a GPU run's config.yaml still reads on a laptop.
        self.device = device_name(self.device, "device")


@dataclass
class AgentSection:
    """The agent: ``algo`` plus that algorithm's own config dataclass (see :mod:`rlhf_gym.agents.registry`)."""

    algo: str
    config: Any

    def to_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, **dataclasses.asdict(self.config)}


@dataclass
class ResolvedConfig:
    """Everything a run needs; ``DIR/config.yaml`` is this, written by :func:`dump_config`."""

    env: EnvConfig
    agent: AgentSection
    run: RunConfig

    def to_dict(self) -> dict[str, Any]:
        return {"env": dataclasses.asdict(self.env), "agent": self.agent.to_dict(), "run": dataclasses.asdict(self.run)}


# ----- validation ------------------------------------------------------------------------------------------
def suggest(key: str, valid: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest valid key, or the list of valid keys."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    args = typing.get_args(tp)
    if args and (typing.get_origin(tp) in (typing.Union, types.UnionType)):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Checks ``value`` against the type hint ``tp`` (ints are accepted as floats, ``2e4`` as an int)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _check_bounds(value: Any, meta: typing.Mapping, where: str) -> None:
    if value is None or not isinstance(value, int | float) or isinstance(value, bool):
        return
    for key, op, text in (("ge", float.__ge__, ">="), ("gt", float.__gt__, ">"),
                          ("le", float.__le__, "<="), ("lt", float.__lt__, "<")):
        bound = meta.get(key)
        if bound is not None and not op(float(value), float(bound)):
            raise ConfigError(f"{where}: must be {text} {bound}, got {value!r}")


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> one-line doc: ``metadata["doc"]``, else the field's docstring or ``# comment`` in the source
    of the class (or of the base class that declares it)."""
    import inspect

    docs = {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cls)}
    for klass in cls.__mro__:
        missing = [n for n, d in docs.items() if not d]
        if not missing or klass is object:
            break
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for name in missing:
            m = (re.search(rf'^\s+{re.escape(name)}\s*:[^\n]*\n\s+"""(.+?)"""', source, re.M | re.S)
                 or re.search(rf"^\s+{re.escape(name)}\s*:[^\n#]*#\s*(.+)$", source, re.M))
            if m:
                docs[name] = " ".join(m.group(1).split())
    return docs


def build_section(cls: type, data: dict[str, Any], where: str, section: str) -> Any:
    """Validates ``data`` into dataclass ``cls``; ``where`` (a file) and ``section`` prefix every error.

    Unknown keys, wrong types and out-of-range values (field metadata bounds, or the dataclass's own
    ``__post_init__`` checks) raise a one-line ConfigError.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {section} must be a mapping of key: value, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if not isinstance(key, str) or key not in fields:
            raise ConfigError(f"{where}: unknown key {section}.{key}{suggest(str(key), list(fields))}")
        at = f"{where}: {section}.{key}"
        kwargs[key] = coerce(value, hints.get(key, Any), at)
        _check_bounds(kwargs[key], fields[key].metadata, at)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: {section} is missing required key(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except RLHFGymError as e:
        raise ConfigError(f"{where}: {section}: {e}") from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {section}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e


# ----- overrides -------------------------------------------------------------------------------------------
def parse_overrides(items: list[str] | None) -> list[tuple[str, str, Any]]:
    """``["env.beta=0.1"]`` -> ``[("env", "beta", 0.1)]``; the value is parsed as a YAML scalar."""
    out = []
    for item in items or []:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. env.beta=0.1")
        section, dot, name = key.partition(".")
        if not dot or not name:
            guess = next((s for s, c in (("env", EnvConfig), ("run", RunConfig))
                          if key in {f.name for f in dataclasses.fields(c)}), "agent")
            raise ConfigError(f"--set {item!r}: prefix the key with its section, e.g. {guess}.{key}={raw}")
        if section not in SECTIONS:
            raise ConfigError(f"--set {item!r}: unknown section {section!r}{suggest(section, list(SECTIONS))}")
        value = parse_yaml(raw, f"--set {key}")
        if isinstance(value, dict | list) and not raw.strip().startswith(("[", "{")):
            value = raw  # "a: b" is a string here, not a mapping
        out.append((section, name, value))
    return out


def _apply(data: dict[str, Any], name: str, value: Any) -> None:
    """Sets ``name`` (possibly dotted, for mapping-valued fields) in ``data``."""
    head, dot, rest = name.partition(".")
    if dot:
        sub = data.setdefault(head, {})
        if not isinstance(sub, dict):
            raise ConfigError(f"--set: {head} is not a mapping, so {name} cannot be set")
        _apply(sub, rest, value)
    else:
        data[head] = value


# ----- whole runs ------------------------------------------------------------------------------------------
def build_agent(data: dict[str, Any], where: str) -> AgentSection:
    """Validates an agent section (``algo`` + the algorithm's own fields) against the algorithm's dataclass."""
    from rlhf_gym.agents.registry import ALGORITHMS as ALGOS
    from rlhf_gym.agents.registry import algo_spec

    data = dict(data)
    algo = data.pop("algo", None)
    if algo is None:
        raise ConfigError(f"{where}: agent is missing 'algo' (one of {', '.join(ALGOS)})")
    if not isinstance(algo, str) or algo not in ALGOS:
        raise ConfigError(f"{where}: agent.algo: unknown algorithm {algo!r}{suggest(str(algo), list(ALGOS))}"
                          .replace("valid keys", "choose one of"))
    config_cls = algo_spec(algo).config_class()
    return AgentSection(algo, build_section(config_cls, data, where, "agent"))


def resolve(env: dict, agent: dict, run: dict, where: dict[str, str]) -> ResolvedConfig:
    """Validates raw section dicts; ``where[section]`` names the file each came from, for errors."""
    cfg = ResolvedConfig(
        env=build_section(EnvConfig, env, where["env"], "env"),
        agent=build_agent(agent, where["agent"]),
        run=build_section(RunConfig, run, where["run"], "run"),
    )
    # The run's seed and device are the agent's unless its section sets its own.
    for name in ("seed", "device"):
        if hasattr(cfg.agent.config, name) and getattr(cfg.agent.config, name) is None:
            setattr(cfg.agent.config, name, getattr(cfg.run, name))
    return cfg


def load_run_config(env_file: str | Path, agent_file: str | Path, overrides: list[str] | None = None) -> ResolvedConfig:
    """Reads an env preset and an agent preset, applies ``--set`` overrides and validates everything."""
    env = read_yaml_mapping(env_file)
    if "env" in env and isinstance(env["env"], dict) and len(env) == 1:
        env = env["env"]  # a full config's env section is accepted too
    return preset_config(env, read_yaml_mapping(agent_file), overrides, str(env_file), str(agent_file))


def preset_config(env: dict[str, Any], agent: dict[str, Any], overrides: Sequence[str] | None = None,
                  env_where: str = "env preset", agent_where: str = "agent preset") -> ResolvedConfig:
    """:func:`load_run_config` of presets already read (``agent`` may hold ``run:``); errors name ``*_where``."""
    agent = dict(agent)
    run = agent.pop("run", None) or {}
    if not isinstance(run, dict):
        raise ConfigError(f"{agent_where}: run must be a mapping of key: value, got {run!r}")
    where = {"env": env_where, "agent": agent_where, "run": agent_where}
    sections = {"env": dict(env), "agent": agent, "run": dict(run)}
    for section, name, value in parse_overrides(list(overrides or [])):
        _apply(sections[section], name, value)
        where[section] = where[section] if where[section].endswith(" (with --set)") else f"{where[section]} (with --set)"
    return resolve(sections["env"], sections["agent"], sections["run"], where)


def load_resolved_config(path: str | Path, overrides: list[str] | None = None) -> ResolvedConfig:
    """Reads a resolved ``config.yaml`` (as :func:`dump_config` writes it), with optional overrides."""
    data = read_yaml_mapping(path)
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]}{suggest(str(unknown[0]), list(SECTIONS))}")
    for s in SECTIONS:
        if data.get(s) is not None and not isinstance(data[s], dict):
            raise ConfigError(f"{path}: {s} must be a mapping of key: value, got {data[s]!r}")
    sections = {s: dict(data.get(s) or {}) for s in SECTIONS}
    where = {s: str(path) for s in SECTIONS}
    for section, name, value in parse_overrides(overrides):
        _apply(sections[section], name, value)
        where[section] = f"{path} (with --set)"
    return resolve(sections["env"], sections["agent"], sections["run"], where)


def dump_config(cfg: ResolvedConfig) -> str:
    """The resolved config as YAML with each field's one-line doc as a comment."""
    lines = ["# Resolved rlhf-gym run config: `rlhf-gym train --resume --out DIR` reads it back."]
    data = cfg.to_dict()
    classes = {"env": EnvConfig, "agent": type(cfg.agent.config), "run": RunConfig}
    for section in SECTIONS:
        docs = field_docs(classes[section])
        docs.setdefault("algo", "algorithm name (see rlhf_gym.agents.registry.ALGORITHMS)")
        lines.append(f"{section}:")
        for key, value in data[section].items():
            text = yaml.safe_dump({key: list(value) if isinstance(value, tuple) else value},
                                  default_flow_style=True, width=10_000).strip()[1:-1]
            comment = f"  # {docs[key]}" if docs.get(key) else ""
            lines.append(f"  {text}{comment}")
    return "\n".join(lines) + "\n"


def describe(cls: type) -> str:
    """A ``key (type, default): doc`` line per field, for ``--help`` epilogs and the docs."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else "required"
        rows.append(f"  {f.name} ({_type_name(hints.get(f.name, Any))}, default {default!r}): {docs[f.name]}")
    return "\n".join(rows)
