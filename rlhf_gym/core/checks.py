"""Validators for keyword arguments and config fields: each names the field and the rule it broke.

Every config dataclass in the package (agents, PPO-ptx, LoRA, reward-model training, SFT, annotators) calls
:func:`check_fields` first in ``__post_init__`` — every field against its type hint, so a bool must be a bool
(``"no"`` is not False), an int an int (not ``2.5``, not ``True``), a float finite — and then checks its
ranges with :func:`check`. The same bad value reads the same way wherever it is given.

>>> check_fields_of = lambda **kw: check_fields(_Example(**kw))
>>> check_fields_of(flag="no")
Traceback (most recent call last):
...
rlhf_gym.errors.ConfigError: flag='no' is invalid: must be true or false (a bool)
>>> check_fields_of(rate=float("inf"))
Traceback (most recent call last):
...
rlhf_gym.errors.ConfigError: rate=inf is invalid: must be a finite number
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from rlhf_gym.errors import ConfigError, RLHFGymError

__all__ = ["check", "check_fields", "is_blank", "is_bool", "is_int", "is_number", "resolve_device",
           "device_name", "check_int", "check_number"]


def check(ok: bool, name: str, value: object, rule: str) -> None:
    """Raises a ConfigError naming the field unless ``ok``."""
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: {rule}")


def is_bool(x: object) -> bool:
    """A bool (Python's or NumPy's), not ``1`` or ``"yes"``."""
    return isinstance(x, bool | np.bool_)


def is_int(x: object) -> bool:
    """An integer (Python's or NumPy's, not a bool)."""
    return isinstance(x, numbers.Integral) and not is_bool(x)


def is_number(x: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, numbers.Real) and not is_bool(x) and math.isfinite(x)


def check_int(value: object, name: str, *, low: int | None = None, error: type[RLHFGymError] = ConfigError) -> int:
    """``value`` as a Python int; an error naming ``name`` unless it is an integer ``>= low``."""
    if not is_int(value) or (low is not None and value < low):
        raise error(f"{name}={value!r} is invalid: must be an integer" + (f" >= {low}" if low is not None else ""))
    return int(value)


def check_number(value: object, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, error: type[RLHFGymError] = ConfigError) -> float:
    """``value`` as a float; an error naming ``name`` unless it is a finite number in the given range."""
    ok = is_number(value) and (low is None or (value > low if low_open else value >= low)) and (
        high is None or value <= high)
    if not ok:
        rule = "must be a finite number"
        if low is not None and high is not None:
            rule += f" in {'(' if low_open else '['}{low}, {high}]"
        elif low is not None:
            rule += f" {'>' if low_open else '>='} {low}"
        elif high is not None:
            rule += f" <= {high}"
        raise error(f"{name}={value!r} is invalid: {rule}")
    return float(value)


# ----- text --------------------------------------------------------------------------------------------------
def is_blank(text: str) -> bool:
    """True if ``text`` shows nothing: only whitespace, format characters (zero-width spaces and joiners,
    BOMs, word joiners: Unicode category Cf) and space/line/paragraph separators (NBSP, ...: Zs, Zl, Zp).

    >>> is_blank(" \\u200b\\ufeff\\u00a0\\n"), is_blank("a\\u200b")
    (True, False)
    """
    return all(c.isspace() or unicodedata.category(c) in ("Cf", "Zs", "Zl", "Zp") for c in text)


# ----- devices -----------------------------------------------------------------------------------------------
_ACCELERATORS = {"cuda": "CUDA", "mps": "MPS", "xpu": "XPU"}


def _available(kind: str) -> tuple[bool, int | None]:
    """Whether a device type is usable here, and how many devices of it there are (None: not counted)."""
    if kind == "cpu":
        return True, None
    if kind == "cuda":
        return torch.cuda.is_available(), torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available()), None
    xpu = getattr(torch, "xpu", None)
    ok = bool(xpu is not None and xpu.is_available())
    return ok, xpu.device_count() if ok else 0


def resolve_device(value: object, name: str = "device", *, available: bool = True,
                   error: type[RLHFGymError] = ConfigError) -> torch.device | None:
    """``value`` (``None``, a string such as ``"cpu"``/``"cuda:1"``/``"mps"``, or a ``torch.device``) as a
    ``torch.device``, or None for None. Anything else — ``3.5``, ``"bogus"``, ``"cuda:x"`` — is an error naming
    ``name``; so is, when ``available``, an accelerator (or device index) this machine does not have.

    Configs check the spelling only (``available=False``), so a run recorded on a GPU can still be read on a
    laptop; whatever then builds models checks availability.

    >>> resolve_device("cpu"), resolve_device(None)
    (device(type='cpu'), None)
    >>> resolve_device("cuda:x", "run.device")
    Traceback (most recent call last):
    ...
    rlhf_gym.errors.ConfigError: run.device='cuda:x' is invalid: not a torch device (use 'cpu', 'cuda', 'cuda:1', 'mps', ...)
    """
    if value is None:
        return None
    if isinstance(value, torch.device):
        device = value
    elif isinstance(value, str):
        try:
            device = torch.device(value)
        except (RuntimeError, ValueError, TypeError):
            device = None
        if device is None or value != value.strip():
            raise error(f"{name}={value!r} is invalid: not a torch device (use 'cpu', 'cuda', 'cuda:1', 'mps', ...)")
    else:
        raise error(f"{name}={value!r} is invalid: a device is a string such as 'cpu' or 'cuda:0' (or a "
                    f"torch.device), not {type(value).__name__}")
    if device.type != "cpu" and device.type not in _ACCELERATORS:
        raise error(f"{name}={value!r} is invalid: device type {device.type!r} is not supported "
                    "(use 'cpu', 'cuda', 'mps' or 'xpu')")
    if device.type == "cpu" and device.index not in (None, 0):
        raise error(f"{name}={value!r} is invalid: there is one CPU device, use 'cpu'")
    if available:
        ok, count = _available(device.type)
        label = _ACCELERATORS.get(device.type, device.type)
        if not ok:
            raise error(f"{name}={value!r} but {label} is not available on this machine; use 'cpu'")
        if count is not None and device.index is not None and device.index >= count:
            raise error(f"{name}={value!r} but this machine has only {count} {label} device(s) "
                        f"(indices 0 to {count - 1})")
    return device


def device_name(value: object, name: str = "device") -> str | None:
    """The canonical spelling of a device for a config field (``torch.device("cuda", 1)`` -> ``"cuda:1"``),
    checked by :func:`resolve_device` without asking whether this machine has it; None stays None."""
    device = resolve_device(value, name, available=False)
    return None if device is None else str(device)


# ----- whole config dataclasses ----------------------------------------------------------------------------
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        try:
            _HINTS[cls] = typing.get_type_hints(cls)
        except (NameError, TypeError):  # a hint that cannot be resolved is not checked
            _HINTS[cls] = {}
    return _HINTS[cls]


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or None" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    simple = {bool: "true or false (a bool)", int: "an integer", float: "a finite number", str: "a string",
              type(None): "None"}
    if hint in simple:
        return simple[hint]
    origin = origin or hint
    if origin in (list, tuple) or origin is Sequence:
        return "a list" + (f" of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
                           if args and args[0] in simple and args[0] is not type(None) else "")
    if origin in (dict, Mapping):
        return "a mapping"
    return f"a {getattr(origin, '__name__', str(origin))}"


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if hint is bool:
        return is_bool(value)
    if hint is int:
        return is_int(value)
    if hint is float:
        return is_number(value)
    if hint is str:
        return isinstance(value, str)
    container = origin or hint
    if container in (list, tuple) or container is Sequence:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple if container is not Sequence
                                                             else Sequence):
            return False
        if args and not (len(args) == 2 and args[1] is Ellipsis) and container is tuple:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return not args or all(_matches(v, args[0]) for v in value)
    if container in (dict, Mapping):
        return isinstance(value, Mapping)
    if isinstance(container, type):
        return isinstance(value, container)
    return True  # a hint this checker does not understand is left to the config's own checks


def _plain(value: Any) -> Any:
    """NumPy scalars as Python values, so configs stay JSON/YAML-serialisable."""
    return value.item() if isinstance(value, np.generic) else value


def check_fields(obj: Any, where: str = "", *, skip: Sequence[str] = ()) -> None:
    """Checks every field of the dataclass instance ``obj`` against its type hint (see the module docstring);
    NumPy scalars are replaced by Python ones. ``where`` prefixes every error (``"sft: "``, ``"lora."``)."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.name in skip or f.name not in hints:
            continue
        value = getattr(obj, f.name)
        if not _matches(value, hints[f.name]):
            raise ConfigError(f"{where}{f.name}={value!r} is invalid: must be {_describe(hints[f.name])}")
        plain = _plain(value)
        if plain is not value:
            object.__setattr__(obj, f.name, plain)  # works for frozen dataclasses too


@dataclasses.dataclass
class _Example:
    """For the module doctest."""

    flag: bool = True
    rate: float = 0.1
