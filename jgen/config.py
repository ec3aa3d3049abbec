"""Configs are Python files returning an `ml_collections.ConfigDict`; a run is config + overrides.

`load_config` takes a file path or the name of a packaged recipe (jgen/configs/). Overrides are
`dotted.key=value` strings. Every key must already exist in the config and the value must parse as
the existing value's type, so a typo fails loudly instead of silently training the wrong model.
`check` is the one place that says which values each key accepts; it runs before anything else.
"""

import ast
import importlib
import importlib.util
import json
import os

import ml_collections

from jgen import files
from jgen.configs import RECIPES, base
from jgen.configs.rules import METRICS, check, check_hardware, flatten, halvings  # noqa: F401 (the public names)
from jgen.errors import JgenError


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Runs `get_config()` of a config file (`spec` an existing .py path) or of a packaged recipe
    (`spec` one of jgen.configs.RECIPES, with or without .py). Every failure is a one-line JgenError."""
    spec = os.fspath(spec)
    if os.path.isfile(spec):
        if not spec.endswith(".py"):
            raise JgenError(f"config file {spec} is not a Python file: give a .py file or a recipe name "
                            f"({', '.join(RECIPES)})")
        module = _import(spec, lambda: _file_module(spec))
    else:
        name = spec[:-3] if spec.endswith(".py") else spec
        if name not in RECIPES:
            raise JgenError(f"config not found: {spec} is neither a file nor a packaged recipe "
                            f"(known: {', '.join(RECIPES)})")
        module = _import(spec, lambda: importlib.import_module(f"jgen.configs.{name}"))
    if not callable(getattr(module, "get_config", None)):
        raise JgenError(f"config file {spec} defines no get_config()")
    config = _import(spec, module.get_config)
    if not isinstance(config, ml_collections.ConfigDict):
        raise JgenError(f"get_config() of {spec} returned a {type(config).__name__}, not an "
                        "ml_collections.ConfigDict")
    return config


def _file_module(path: str):
    spec = importlib.util.spec_from_file_location("jgen_user_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _import(spec: str, fn):
    """fn(), with any exception but a JgenError turned into one line naming the config."""
    try:
        return fn()
    except JgenError:
        raise
    except Exception as e:  # a user's file can raise anything while it runs
        lines = str(e).strip().splitlines()
        raise JgenError(f"config file {spec} failed to load: {type(e).__name__}: {lines[0] if lines else ''}"
                        ) from None


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
    files.write_text(path, json.dumps(config.to_dict(), indent=2, sort_keys=True))


def _laid_over(defaults: dict, values: dict) -> dict:
    """`defaults` with `values` written over it, section by section."""
    out = dict(defaults)
    for k, v in values.items():
        both_sections = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _laid_over(out[k], v) if both_sections else v
    return out


# Keys that configs saved by earlier versions may hold and that no longer mean anything: dropped on reading.
RETIRED = (("data", "shuffle_buffer"),)  # each epoch is a full permutation since the Grain pipeline


def read_config(path: str) -> ml_collections.ConfigDict:
    """Reads a config saved by `save_config` (JSON lists come back as the tuples they were), over the
    base config of its family, so a workdir written before a key existed reads with that key's default."""
    try:
        saved = _tuples(json.loads(files.read_text(path)))
    except (ValueError, UnicodeDecodeError) as e:  # a damaged file: truncated, overwritten, not text
        raise JgenError(f"{path} is damaged (not a JSON config: {str(e).splitlines()[0][:80]}); restore it from a "
                        "copy or use a fresh --workdir") from None
    if not isinstance(saved, dict):
        raise JgenError(f"{path} does not hold a saved jgen config")
    if saved.get("family") not in base.FAMILIES:
        raise JgenError(f"{path} holds no config of a jgen family (family={saved.get('family')!r}; known: "
                        f"{', '.join(base.FAMILIES)})")
    defaults = base.get_config(saved["family"]).to_dict()
    for section, key in RETIRED:
        saved.get(section, {}).pop(key, None)
    return ml_collections.ConfigDict(_laid_over(defaults, saved))
