"""Task specs (:class:`~rlhf_gym.tasks.base.Task`) and their registry.

:func:`register_task` adds a task and registers its Gymnasium id ``rlhf_gym/<Name>-v<version>`` (single and
``make_vec``) with the envs' factories, named by import path only: this floor sits below ``envs`` and does
not import it. The env built from that id reads the task back with :func:`get_task`. Built-in tasks:

* ``sentiment`` (``rlhf_gym/Sentiment-v0``) — :mod:`rlhf_gym.tasks.sentiment`, the embedded review world;
* ``readability``, ``concise``, ``sentiment-readability`` — the same world with a textstat gold, a length
  hack and a two-objective trade-off (:mod:`~rlhf_gym.tasks.readability`, :mod:`~rlhf_gym.tasks.concise`,
  :mod:`~rlhf_gym.tasks.tradeoff`);
* ``imdb`` (``rlhf_gym/Imdb-v0``) — :mod:`rlhf_gym.tasks.imdb`, IMDB reviews with gpt2 (a hub download).

``rlhf-gym tasks`` lists them all with their headroom figures (docs/tasks.md).

A new task is one module that calls :func:`register_task` plus one YAML preset (docs/tasks.md). In a process
that has not imported that module (a spawned worker), name it in the id: ``gym.make("mymodule:rlhf_gym/Toy-v0")``.

>>> get_task("sentiment").env_id
'rlhf_gym/Sentiment-v0'
>>> get_task("sentimnet")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rlhf_gym.errors.ConfigError: unknown task 'sentimnet'; did you mean 'sentiment'? (registered: ..., sentiment, ...)
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys

import gymnasium as gym

from rlhf_gym.errors import ConfigError
from rlhf_gym.tasks.base import DEFAULT_METRICS, Task

__all__ = ["Task", "DEFAULT_METRICS", "register_task", "get_task", "list_tasks", "DEFAULT_TASK",
           "ENTRY_POINT", "VECTOR_ENTRY_POINT", "MODULE_TASK", "env_kwargs", "register_env_id"]

#: The task an environment or run uses when none is named.
DEFAULT_TASK = "sentiment"
#: The Gymnasium entry points every task id uses (import paths, so this floor does not import envs).
ENTRY_POINT = "rlhf_gym.envs.registration:make_text_env"
VECTOR_ENTRY_POINT = "rlhf_gym.envs.registration:make_text_vec_env"

#: ``MODULE:NAME``: a task registered by a module that :func:`get_task` imports first.
MODULE_TASK = re.compile(r"[A-Za-z_][\w.]*:[a-z][a-z0-9-]*\Z")

_TASKS: dict[str, Task] = {}
_KWARGS: dict[str, dict[str, str]] = {}


def register_task(task: Task, module: str | None = None) -> Task:
    """Adds ``task`` to the registry and registers its Gymnasium id; returns it.

    ``module`` is the importable module that registers the task (default: the caller's). Outside this
    package the id's keyword arguments name the task as ``MODULE:NAME``, so a process that has not imported
    the module (a spawned worker of ``make_async("MODULE:rlhf_gym/Name-v0")``) imports it and finds the task.
    A name or id already registered is refused (a ConfigError), so two modules cannot silently shadow each
    other; bump ``version`` for a changed task.
    """
    if not isinstance(task, Task):
        raise ConfigError(f"register_task takes a Task, got {type(task).__name__}")
    if task.name in _TASKS:
        raise ConfigError(f"task {task.name!r} is already registered ({_TASKS[task.name].env_id})")
    if task.env_id in gym.registry:
        raise ConfigError(f"task {task.name!r}: Gymnasium id {task.env_id!r} is already registered")
    if module is None:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        module = caller if caller and caller != "__main__" else None
    inside = module is None or module == __name__ or module.startswith(__name__ + ".")
    _KWARGS[task.name] = {"task": task.name if inside else f"{module}:{task.name}"}
    _TASKS[task.name] = task
    register_env_id(task)
    return task


def env_kwargs(task: str | Task) -> dict[str, str]:
    """The keyword arguments a registered task's Gymnasium id passes its env: ``{"task": NAME}`` (or
    ``{"task": "MODULE:NAME"}`` for a task registered outside this package) and its ``max_new_tokens``."""
    task = get_task(task)
    return {**_KWARGS[task.name], "max_new_tokens": task.max_new_tokens}


def register_env_id(task: Task) -> None:
    """Registers ``task``'s Gymnasium id (single and vector entry points) unless Gymnasium holds it."""
    if task.env_id not in gym.registry:
        gym.register(id=task.env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                     kwargs=env_kwargs(task))


def get_task(name: str | Task) -> Task:
    """The registered task called ``name`` (a Task is returned as is); unknown names are a ConfigError.

    ``"MODULE:NAME"`` imports ``MODULE`` first (the module that registers the task), as Gymnasium's
    ``"module:id"`` does: this is how a preset (``task: my_tasks:brevity``) or a worker process finds a task
    defined outside the package.
    """
    if isinstance(name, Task):
        return name
    if isinstance(name, str) and MODULE_TASK.match(name):
        module, _, name = name.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"task {module}:{name}: cannot import module {module!r} ({e})") from e
    if not isinstance(name, str) or name not in _TASKS:
        close = difflib.get_close_matches(str(name), list(_TASKS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ";"
        raise ConfigError(f"unknown task {name!r}{hint} (registered: {', '.join(sorted(_TASKS))})")
    return _TASKS[name]


def list_tasks() -> list[Task]:
    """Every registered task, by name."""
    return [_TASKS[name] for name in sorted(_TASKS)]


def _unregister_task(name: str) -> None:
    """Removes a task and its Gymnasium id (for tests that register toy tasks)."""
    task = _TASKS.pop(name)
    _KWARGS.pop(name, None)
    gym.registry.pop(task.env_id, None)


# The built-in tasks (each module registers its task).
from rlhf_gym.tasks import arithmetic as _arithmetic  # noqa: E402,F401
from rlhf_gym.tasks import commongen as _commongen  # noqa: E402,F401
from rlhf_gym.tasks import concise as _concise  # noqa: E402,F401
from rlhf_gym.tasks import imdb as _imdb  # noqa: E402,F401
from rlhf_gym.tasks import readability as _readability  # noqa: E402,F401
from rlhf_gym.tasks import sentiment as _sentiment  # noqa: E402,F401
from rlhf_gym.tasks import tradeoff as _tradeoff  # noqa: E402,F401
