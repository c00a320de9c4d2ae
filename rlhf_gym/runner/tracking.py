"""Run tracking: ``DIR/metrics.jsonl`` and ``DIR/samples.jsonl`` always, Weights & Biases when asked.

* ``metrics.jsonl`` — one JSON object per logged step: ``step`` (generated tokens so far) plus
  slash-namespaced keys (``objective/kl``, ``objective/scores``, ``eval/gold_reward``, ...). Non-finite
  numbers are written as ``null``.
* ``samples.jsonl`` — one object per sample: ``step``, ``kind`` (``rollout`` or ``eval``), ``prompt``,
  ``completion``, and scores.

W&B mirrors the same keys. ``--wandb online|offline|disabled`` picks the mode; without it the mode comes from
``$WANDB_MODE``, else ``online`` when an API key is configured (``$WANDB_API_KEY`` or ``~/.netrc``), else
``offline``. Online mode first checks that the W&B host answers within 2 s and falls back to offline, and any
W&B failure downgrades to local files with a warning: tracking never blocks training on the network.

On resume, rows logged after the checkpoint being resumed (by a run that was killed later) are dropped, so
the files read as if the run had never stopped. Reading is strict (:func:`read_jsonl`): only a torn last line
(a writer killed mid-row) is skipped; any other line that is not a JSON object with an integer ``step`` is
a :class:`~rlhf_gym.errors.ModelError` naming the file and line.
"""

from __future__ import annotations

import json
import math
import netrc
import os
import socket
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rlhf_gym.core.jsonio import parse_json, read_json
from rlhf_gym.errors import ModelError
from rlhf_gym.io import write_text_atomic

WANDB_MODES = ("online", "offline", "disabled")
METRICS_FILE, SAMPLES_FILE, TRACKING_FILE = "metrics.jsonl", "samples.jsonl", "tracking.json"


def jsonable(value: Any) -> Any:
    """Python floats/ints/strings from numpy and torch scalars; NaN and inf become None."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a run's JSONL file (``metrics.jsonl``, ``samples.jsonl``); ``[]`` if there is none.

    A torn last line (no newline at the end: a killed writer) is skipped. Any other line must be a JSON
    object whose ``step`` is an integer >= 0; anything else is a ModelError naming ``path:line``.
    """
    p = Path(path)
    if not p.is_file():
        return []
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelError(f"run file {p} is not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise ModelError(f"run file {p} cannot be read ({e.strerror})") from e
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    rows = []
    for n, line in enumerate([*lines, torn], 1):
        if not line.strip():
            continue
        where = f"{p}:{n}"
        try:
            row = parse_json(line, where, ModelError)
        except ModelError:
            if n == len(lines) + 1:
                continue  # the torn last line of a killed writer
            raise
        if not isinstance(row, dict):
            raise ModelError(f"{where}: expected a JSON object, not {type(row).__name__}")
        step = row.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ModelError(f"{where}: 'step' must be an integer >= 0, got {step!r}")
        rows.append(row)
    return rows


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Rewrites ``path`` atomically keeping the complete rows with ``step <= max_step``."""
    if not path.is_file():
        return
    keep = [r for r in read_jsonl(path) if r["step"] <= max_step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in keep))


def wandb_api_key_configured() -> bool:
    """True if W&B has an API key: ``$WANDB_API_KEY`` or a ``~/.netrc`` entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _wandb_reachable(timeout: float = 2.0) -> bool:
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    try:
        with socket.create_connection((url.hostname or "api.wandb.ai", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_wandb_mode(requested: str | None) -> tuple[str, str | None]:
    """``(mode, note)``: the W&B mode to use and, when it differs from what was asked, why."""
    mode = requested or os.environ.get("WANDB_MODE") or ("online" if wandb_api_key_configured() else "offline")
    if mode in ("dryrun",):
        mode = "offline"
    if mode not in WANDB_MODES:
        from rlhf_gym.errors import ConfigError

        raise ConfigError(f"unknown W&B mode {mode!r}; choose one of {', '.join(WANDB_MODES)}")
    if mode == "online" and not wandb_api_key_configured():
        return "offline", "no W&B API key configured (wandb login or $WANDB_API_KEY): logging offline"
    if mode == "online" and not _wandb_reachable():
        return "offline", "the W&B server is unreachable: logging offline (sync later with `wandb sync`)"
    return mode, None


class Tracker:
    """Writes metrics and samples of one run directory, mirrored to W&B.

    Args:
        run_dir: the run directory (must exist).
        config: the resolved config, sent to W&B.
        wandb_mode: ``online``, ``offline``, ``disabled`` or None (see the module docstring).
        resume_step: when resuming from a checkpoint at this step, rows logged after it are dropped.
        name: the W&B run name (default: the directory's name).
        project: the W&B project.
    """

    def __init__(self, run_dir: str | Path, config: dict | None = None, *, wandb_mode: str | None = "disabled",
                 resume_step: int | None = None, name: str | None = None, project: str = "rlhf-gym"):
        self.dir = Path(run_dir)
        self.metrics_path, self.samples_path = self.dir / METRICS_FILE, self.dir / SAMPLES_FILE
        if resume_step is not None:
            truncate_jsonl(self.metrics_path, resume_step)
            truncate_jsonl(self.samples_path, resume_step)
        else:
            for p in (self.metrics_path, self.samples_path):
                p.unlink(missing_ok=True)
        self._metrics = self.metrics_path.open("a", encoding="utf-8")
        self._samples = self.samples_path.open("a", encoding="utf-8")
        self.mode, self.note = resolve_wandb_mode(wandb_mode)
        self.wandb_run = None
        if self.mode != "disabled":
            self._start_wandb(config or {}, name or self.dir.name, project, resume_step is not None)

    def _start_wandb(self, config: dict, name: str, project: str, resume: bool) -> None:
        state_path = self.dir / TRACKING_FILE
        state = read_json(state_path, "W&B state", ModelError) if state_path.is_file() else {}
        try:
            import wandb

            self.wandb_run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", project), name=name, dir=str(self.dir), config=config,
                mode=self.mode, id=state.get("wandb_id") if resume else None, resume="allow" if resume else None,
                settings=wandb.Settings(silent=True, init_timeout=30),
            )
        except Exception as e:  # noqa: BLE001 — W&B must never stop a run
            warnings.warn(f"W&B could not start ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                          "logging to local files only", stacklevel=2)
            self.mode, self.wandb_run = "disabled", None
            return
        state_path.write_text(json.dumps({"wandb_id": self.wandb_run.id, "wandb_mode": self.mode}))

    def log(self, metrics: dict[str, Any]) -> None:
        """Appends one row (it must have ``step``) to ``metrics.jsonl`` and W&B."""
        row = jsonable(dict(metrics))
        if not isinstance(row.get("step"), int) or isinstance(row["step"], bool) or row["step"] < 0:
            raise ValueError(f"a metrics row needs an integer 'step' >= 0, got {row.get('step')!r}")
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        if self.wandb_run is not None:
            try:
                self.wandb_run.log({k: v for k, v in row.items() if k != "step" and v is not None}, step=int(row["step"]))
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"W&B log failed ({e}); continuing with local files", stacklevel=2)
                self.wandb_run = None

    def log_samples(self, step: int, rows: list[dict[str, Any]], kind: str = "rollout") -> None:
        """Appends samples (dicts with ``prompt``, ``completion`` and scores) to ``samples.jsonl`` and W&B."""
        for r in rows:
            self._samples.write(json.dumps(jsonable({"step": int(step), "kind": kind, **r})) + "\n")
        self._samples.flush()
        if self.wandb_run is not None and rows:
            try:
                import wandb

                columns = list(rows[0])
                table = wandb.Table(columns=columns, data=[[jsonable(r.get(c)) for c in columns] for r in rows])
                self.wandb_run.log({f"samples/{kind}": table}, step=int(step))
            except Exception:  # noqa: BLE001
                pass

    def summary(self, values: dict[str, Any]) -> None:
        """Sets W&B summary values (final metrics)."""
        if self.wandb_run is not None:
            try:
                self.wandb_run.summary.update(jsonable(values))
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        self._metrics.close()
        self._samples.close()
        if self.wandb_run is not None:
            try:
                self.wandb_run.finish()
            except Exception:  # noqa: BLE001
                pass
            self.wandb_run = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
