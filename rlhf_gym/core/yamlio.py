"""Strict YAML reading for config files and presets (the YAML twin of :mod:`rlhf_gym.core.jsonio`).

PyYAML's SafeLoader keeps the last of two equal keys silently and reads ``1e-5`` as a string; here a key
given twice is an error naming ``file:line``, ``1e-5`` is a float, and every failure (syntax, a date such as
``2024-13-45``, nesting too deep) is one ConfigError line naming the file.

>>> parse_yaml("lr: 1e-5", "a.yaml")
{'lr': 1e-05}
>>> parse_yaml("lr: 1\\nlr: 2", "a.yaml")
Traceback (most recent call last):
...
rlhf_gym.errors.ConfigError: a.yaml:2: invalid YAML (duplicate key 'lr' (first given on line 1))
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from rlhf_gym.errors import ConfigError
from rlhf_gym.io import read_text

__all__ = ["parse_yaml", "read_yaml_mapping"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-5`` as a float (YAML 1.1 wants ``1.0e-5``; people write ``1e-5``) and
    refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base` merges are overridden on purpose
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:
            continue  # unhashable: construct_mapping below says so
        if first is not None:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"duplicate key {key!r} (first given on line {first})", key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)[eE][-+]?\d+$|^[-+]?(?:\d[\d_]*)?\.\d[\d_]*$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str) -> Any:
    """Parses YAML text; a syntax error becomes a one-line ConfigError naming ``where`` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}{line}: invalid YAML ({problem})") from e
    except RecursionError as e:
        raise ConfigError(f"{where}: invalid YAML (nested too deeply)") from e
    except (ValueError, TypeError, OverflowError) as e:  # e.g. a date such as 2024-13-45 (PyYAML's datetime)
        raise ConfigError(f"{where}: invalid YAML value ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Reads a YAML file that must hold a non-empty mapping."""
    p = Path(path)
    data = parse_yaml(read_text(p, "config file", ConfigError), str(p))
    if data is None:
        raise ConfigError(f"config file {p} is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of key: value, not a {type(data).__name__}")
    return data
