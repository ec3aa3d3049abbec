"""Configs are Python files returning an `ml_collections.ConfigDict`; a run is config + overrides.

Overrides are `dotted.key=value` strings. Every key must already exist in the config and the value
must parse as the existing value's type, so a typo fails loudly instead of silently training the
wrong model.
"""

import ast
import importlib.util
import json
import os

import ml_collections

from jgen.errors import JgenError


def load_config(path: str) -> ml_collections.ConfigDict:
    """Runs `get_config()` from a config file."""
    if not os.path.isfile(path):
        raise JgenError(f"config file not found: {path}")
    spec = importlib.util.spec_from_file_location("jgen_user_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise JgenError(f"config file {path} defines no get_config()")
    return module.get_config()


def _parse(key: str, text: str, like):
    """Parses `text` as the type of the existing value `like`."""
    if isinstance(like, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise JgenError(f"config key '{key}' expects true/false, got '{text}'")
    if isinstance(like, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise JgenError(f"config key '{key}' expects {type(like).__name__}, got '{text}'") from None
    if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(like, (tuple, list)) and isinstance(value, (tuple, list, int, float)):
        value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if like is not None and not isinstance(value, type(like)):
        raise JgenError(f"config key '{key}' expects {type(like).__name__}, got '{text}'")
    return value


def apply_overrides(config: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
    """Applies `key=value` strings to a copy of `config`; unknown keys and bad types raise."""
    config = ml_collections.ConfigDict(config.to_dict())
    for item in overrides:
        if "=" not in item:
            raise JgenError(f"override '{item}' is not of the form key=value")
        key, text = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = config
        for i, part in enumerate(parents):
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                raise JgenError(f"unknown config key '{key}' (no section '{'.'.join(parents[:i + 1])}')")
            node = node[part]
        if leaf not in node:
            known = ", ".join(sorted(node.keys()))
            raise JgenError(f"unknown config key '{key}' (known here: {known})")
        if isinstance(node[leaf], ml_collections.ConfigDict):
            raise JgenError(f"config key '{key}' is a section; set one of its keys instead")
        node[leaf] = _parse(key, text, node[leaf])
    return config


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def save_config(config: ml_collections.ConfigDict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)


def read_config(path: str) -> ml_collections.ConfigDict:
    """Reads a config saved by `save_config` (JSON lists come back as the tuples they were)."""
    with open(path) as f:
        return ml_collections.ConfigDict(_tuples(json.load(f)))
