"""Config loading and dotted overrides."""

import os

import pytest

from jgen.config import apply_overrides, load_config, read_config, save_config
from jgen.errors import JgenError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "ddpm_mnist5k.py")


def test_overrides_parse_by_existing_type():
    c = apply_overrides(load_config(CONFIG), ["train.steps=7", "optim.lr=1", "model.ch_mult=(1,2)",
                                              "data.random_flip=true", "data.source=folder:/x:y"])
    assert c.train.steps == 7 and isinstance(c.optim.lr, float) and c.optim.lr == 1.0
    assert c.model.ch_mult == (1, 2) and c.data.random_flip is True and c.data.source == "folder:/x:y"


def test_unknown_key_names_the_key():
    with pytest.raises(JgenError, match="unknown config key 'train.stepz'"):
        apply_overrides(load_config(CONFIG), ["train.stepz=3"])
    with pytest.raises(JgenError, match="unknown config key 'trian.steps'"):
        apply_overrides(load_config(CONFIG), ["trian.steps=3"])


def test_wrong_type_names_the_key():
    with pytest.raises(JgenError, match="'train.steps' expects int"):
        apply_overrides(load_config(CONFIG), ["train.steps=many"])
    with pytest.raises(JgenError, match="'train.steps' expects int"):
        apply_overrides(load_config(CONFIG), ["train.steps=1.5"])
    with pytest.raises(JgenError, match="'data.random_flip' expects true/false"):
        apply_overrides(load_config(CONFIG), ["data.random_flip=maybe"])


def test_original_config_untouched_and_round_trip(tmp_path):
    c = load_config(CONFIG)
    d = apply_overrides(c, ["train.steps=5"])
    assert c.train.steps != 5
    save_config(d, tmp_path / "c.json")
    assert read_config(tmp_path / "c.json").to_dict() == d.to_dict()


def test_missing_config_file():
    with pytest.raises(JgenError, match="not found"):
        load_config("/nonexistent/config.py")
