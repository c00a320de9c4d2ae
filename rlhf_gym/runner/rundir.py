"""A run directory's own records of itself: the config it started with, and its result.

``DIR/config.yaml`` is the resolved config as commented YAML (what people read and edit), ``config.json``
the same as canonical JSON, and ``config.sha256`` the digest of that JSON. ``--resume`` recomputes the
digest from ``config.yaml`` and refuses, naming the fields that differ, when the file was truncated or
edited: a resume is exact or refused. Only :data:`RESUMABLE_RUN_KEYS` may change, with ``--set``.
``result.json`` holds the final evaluation of a finished run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rlhf_gym.core.jsonio import read_json
from rlhf_gym.core.yamlio import read_yaml_mapping
from rlhf_gym.errors import ConfigError, ModelError
from rlhf_gym.io import check_output, expect, write_text_atomic
from rlhf_gym.runner.config import ResolvedConfig, dump_config, load_resolved_config, parse_overrides

CONFIG_FILE, CONFIG_JSON, DIGEST_FILE, RESULT_FILE = "config.yaml", "config.json", "config.sha256", "result.json"
RESULT_SPEC = {"eval": "dict", "initial_eval": "dict", "steps": "int", "updates": "int", "wall_time": "number"}
#: Run settings that may change on --resume: they do not change what the agent learns.
RESUMABLE_RUN_KEYS = ("total_timesteps", "checkpoint_every", "keep_checkpoints")


def canonical_json(cfg: ResolvedConfig | dict[str, Any]) -> str:
    """The resolved config as canonical JSON (sorted keys, no spaces): what :func:`config_digest` hashes."""
    data = cfg.to_dict() if isinstance(cfg, ResolvedConfig) else cfg
    try:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"the resolved config cannot be written as JSON ({e})") from e


def config_digest(cfg: ResolvedConfig | dict[str, Any]) -> str:
    """sha256 (hex) of :func:`canonical_json`: a run keeps it in ``config.sha256`` to check ``--resume``."""
    return hashlib.sha256(canonical_json(cfg).encode("utf-8")).hexdigest()


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Dotted names of the fields whose values differ between two resolved-config dicts (``env.beta``...)."""
    out = []
    for section in sorted(set(a) | set(b)):
        sa, sb = a.get(section), b.get(section)
        if not isinstance(sa, dict) or not isinstance(sb, dict):
            if sa != sb:
                out.append(section)
            continue
        out += [f"{section}.{k}" for k in sorted(set(sa) | set(sb), key=str)
                if k not in sa or k not in sb or json.dumps(sa[k], sort_keys=True) != json.dumps(sb[k], sort_keys=True)]
    return out


def prepare_run(out: Path, env_file: str | None, agent_file: str | None, overrides: list[str] | None,
                resume: bool) -> ResolvedConfig:
    """The run's config: from the presets for a new run, from ``DIR/config.yaml`` when resuming.

    Resuming checks ``config.yaml`` against the digest the run keeps (``config.sha256``, of ``config.json``)
    and refuses, naming the fields, if it was edited or truncated; only :data:`RESUMABLE_RUN_KEYS` may change
    (with ``--set``).
    """
    out = Path(out)
    if not resume:
        if env_file is None or agent_file is None:
            raise ConfigError("a new run needs --env FILE and --agent FILE (or --resume to continue one)")
        check_output(out)
        if out.exists() and any(out.iterdir()):
            raise ConfigError(f"{out} already holds files; pass --resume to continue that run or choose a new --out")
        from rlhf_gym.runner.config import load_run_config

        return load_run_config(env_file, agent_file, overrides)
    if not (out / CONFIG_FILE).is_file():
        raise ConfigError(f"cannot resume: {out / CONFIG_FILE} does not exist (was {out} made by rlhf-gym train?)")
    bad = [o for o in overrides or [] if not any(o.startswith(f"run.{k}=") for k in RESUMABLE_RUN_KEYS)]
    if bad:
        raise ConfigError(f"--set {bad[0]} cannot change a run being resumed (that would not continue it exactly); "
                          f"only run.{', run.'.join(RESUMABLE_RUN_KEYS)} may change")
    cfg = read_run_config(out, overrides, resume=True)
    if env_file is not None and agent_file is not None:
        from rlhf_gym.runner.config import load_run_config

        given = load_run_config(env_file, agent_file, overrides).to_dict()
        saved = cfg.to_dict()
        for section in ("env", "agent"):
            for key, value in given[section].items():
                if saved[section].get(key) != value:
                    raise ConfigError(f"--resume: {section}.{key} is {value!r} in the given presets but "
                                      f"{saved[section].get(key)!r} in {out / CONFIG_FILE}; drop --env/--agent to "
                                      "resume with the saved config")
    return cfg


def read_run_config(run_dir: str | Path, overrides: list[str] | None = None, *, resume: bool = False) -> ResolvedConfig:
    """The resolved config of a run directory, checked against the run's own record of it.

    ``config.yaml`` must list every field (a truncated file would silently fall back to defaults) and, when
    the run keeps ``config.sha256``, resolve to the config it digests (``config.json``): otherwise a
    ConfigError names the fields that differ. ``resume=True`` also requires the digest. ``overrides``
    (``--set``) are applied afterwards; the fields they set are not compared.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); make one with rlhf-gym train")
    saved = load_resolved_config(path)
    raw, data = read_yaml_mapping(path), saved.to_dict()
    for section, values in data.items():
        missing = [k for k in values if k not in (raw.get(section) or {})]
        if missing:
            raise ConfigError(f"{path}: {section}.{missing[0]} is missing{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}"
                              "; a run's config.yaml lists every field (was it truncated or edited?)")
    digest_path = run_dir / DIGEST_FILE
    if not digest_path.is_file():
        if resume:
            raise ConfigError(f"cannot resume: {digest_path} is missing, so {path} cannot be checked against the "
                              "settings the run started with (a run of an older rlhf-gym, or a deleted file)")
    else:
        with_set = {f"{section}.{name}" for section, name, _ in parse_overrides(overrides)}
        _check_digest(run_dir, data, with_set)
    return load_resolved_config(path, overrides) if overrides else saved


def _check_digest(run_dir: Path, data: dict[str, Any], with_set: set[str]) -> None:
    path, digest_path, json_path = run_dir / CONFIG_FILE, run_dir / DIGEST_FILE, run_dir / CONFIG_JSON
    try:
        want = digest_path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config digest {digest_path} cannot be read ({type(e).__name__})") from e
    if len(want) != 1 or len(want[0]) != 64 or any(c not in "0123456789abcdef" for c in want[0]):
        raise ConfigError(f"config digest {digest_path} must hold one sha256 (64 hex digits)")
    if config_digest(data) == want[0]:
        return
    recorded = read_json(json_path, "run config", ConfigError)
    if config_digest(recorded) != want[0]:
        raise ConfigError(f"{json_path} does not match its digest {digest_path}: the run's record of its config was "
                          f"edited, so {path} cannot be checked; cannot resume exactly")
    diff = [f for f in config_differences(data, recorded) if f not in with_set]
    if not diff:
        return
    section, _, key = diff[0].partition(".")
    now, then = (data.get(section) or {}).get(key, "<missing>"), (recorded.get(section) or {}).get(key, "<missing>")
    more = f" (and {len(diff) - 1} more: {', '.join(diff[1:4])})" if len(diff) > 1 else ""
    raise ConfigError(f"{path} differs from the config the run started with ({json_path}, digest {digest_path}): "
                      f"{diff[0]} is {now!r} there but was {then!r}{more}; restore it (only "
                      f"run.{', run.'.join(RESUMABLE_RUN_KEYS)} may change, with --set)")


def write_config(out: Path, cfg: ResolvedConfig) -> None:
    """``config.yaml``, ``config.json`` and ``config.sha256``, each written atomically."""
    write_text_atomic(out / CONFIG_FILE, dump_config(cfg))
    write_text_atomic(out / CONFIG_JSON, canonical_json(cfg) + "\n")
    write_text_atomic(out / DIGEST_FILE, config_digest(cfg) + "\n")


def check_resume(out: Path, cfg: ResolvedConfig) -> None:
    """Refuses to resume ``out`` with a ``cfg`` that differs from its own in more than the resumable keys."""
    if not (out / CONFIG_FILE).is_file():
        return  # nothing to resume yet: a fresh run
    recorded = read_run_config(out, resume=True).to_dict()
    diff = [f for f in config_differences(recorded, cfg.to_dict())
            if f not in {f"run.{k}" for k in RESUMABLE_RUN_KEYS}]
    if diff:
        raise ConfigError(f"cannot resume {out} with a different config: {', '.join(diff[:5])} differ from "
                          f"{out / CONFIG_FILE}; only run.{', run.'.join(RESUMABLE_RUN_KEYS)} may change")


def read_result(run_dir: str | Path) -> dict[str, Any]:
    """``DIR/result.json`` of a finished run, checked for shape (a ModelError naming the file otherwise)."""
    path = Path(run_dir) / RESULT_FILE
    where = f"run result {path}"
    saved = expect(read_json(path, "run result", ModelError), RESULT_SPEC, where)
    for part in ("eval", "initial_eval"):
        for k, v in saved[part].items():
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
                raise ModelError(f"{where}: {part}.{k} must be a number or null, not {type(v).__name__}")
    return saved


def load_run(run_dir: str | Path) -> ResolvedConfig:
    """The resolved config of a run directory (checked as :func:`read_run_config` does)."""
    return read_run_config(run_dir)
