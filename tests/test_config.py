"""Config loading, dotted overrides, packaged recipes and `check`, the one place values are validated."""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from bad_configs import BAD_VALUES, BAD_VALUES_ON_8_DEVICES
from jgen import latent
from jgen.config import apply_overrides, check, halvings, load_config, read_config, save_config
from jgen.configs.rules import FAMILY_RULES, SHARED_RULES
from jgen.configs import RECIPES, base
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


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_loads_by_name_and_by_file_and_passes_check(recipe):
    by_name = load_config(recipe)
    assert load_config(recipe + ".py").to_dict() == by_name.to_dict()
    assert load_config(os.path.join(ROOT, "configs", recipe + ".py")).to_dict() == by_name.to_dict()
    if latent.is_latent(by_name):  # judged at its latents' shape, as `jgen train` judges it (latent.prepare)
        by_name = latent.planned_config(by_name, load_config(os.path.basename(latent.parse(by_name.data.source)[0])))
    check(by_name)


def test_every_recipe_has_a_top_level_file():
    files = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".py"))
    assert files == sorted(RECIPES)


@pytest.mark.parametrize("family", base.FAMILIES)
def test_rules_cover_every_key_of_the_base_config(family):
    def flat(tree, prefix=""):
        return {k for key, v in tree.items()
                for k in (flat(v, f"{prefix}{key}.") if isinstance(v, dict) else {prefix + key})}

    assert flat(base.get_config(family).to_dict()) == {"family"} | set(SHARED_RULES) | set(FAMILY_RULES[family])
    check(base.get_config(family))


def test_unknown_family():
    with pytest.raises(JgenError, match="unknown family 'flow' \\(known: diffusion, gan, vae, autoencoder\\)"):
        base.get_config("flow")
    c = load_config("ddpm_mnist5k")
    c.family = "flow"
    with pytest.raises(JgenError, match="family='flow' must be one of diffusion | gan | vae"):
        check(c)


def test_packaged_recipe_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("ddpm_mnist5k").to_dict() == load_config(CONFIG).to_dict()


@pytest.mark.parametrize("name, text, message", [
    ("c.txt", "def get_config(): pass\n", "is not a Python file"),
    ("c.py", "def get_config(:\n", "failed to load: SyntaxError: "),
    ("c.py", "raise RuntimeError('first line\\nsecond line')\n", "failed to load: RuntimeError: first line"),
    ("c.py", "x = 1\n", "defines no get_config()"),
    ("c.py", "def get_config():\n    return {}['model']\n", "failed to load: KeyError: 'model'"),
    ("c.py", "def get_config():\n    return {'a': 1}\n", "returned a dict, not an ml_collections.ConfigDict"),
])
def test_load_config_errors_are_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(JgenError) as e:
        load_config(str(path))
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_load_config_not_found_lists_the_recipes():
    with pytest.raises(JgenError) as e:
        load_config("ddpm_mnist6k")
    assert "neither a file nor a packaged recipe" in str(e.value) and "ddpm_mnist5k_cfg" in str(e.value)
    assert "\n" not in str(e.value)


def test_read_config_fills_keys_the_file_lacks(tmp_path):
    path = tmp_path / "config.json"
    save_config(load_config("ddpm_mnist5k"), path)
    saved = json.loads(path.read_text())
    del saved["condition"], saved["train"]["grad_accum"], saved["sample"]["guidance"]
    path.write_text(json.dumps(saved))
    c = read_config(path)
    assert c.to_dict() == load_config("ddpm_mnist5k").to_dict()
    assert c.condition.kind == "none" and c.train.grad_accum == 1 and c.sample.guidance == 1.0
    check(c)


def test_check_refuses_unknown_and_missing_keys():
    c = load_config("ddpm_mnist5k")
    c.train.stpes = 10
    with pytest.raises(JgenError, match="unknown config key 'train.stpes' for the diffusion family"):
        check(c)
    c = load_config("dcgan_mnist5k").to_dict()
    del c["gan"]["gp_weight"]
    with pytest.raises(JgenError, match="config key 'gan.gp_weight' is missing"):
        check(ml_collections.ConfigDict(c))


@pytest.mark.parametrize("recipe, override, message", BAD_VALUES)
def test_check_refuses_bad_values(recipe, override, message):
    _assert_refused(recipe, override, message, devices=0)


@pytest.mark.parametrize("recipe, override, message", BAD_VALUES_ON_8_DEVICES)
def test_check_refuses_batches_that_do_not_split_over_devices(recipe, override, message):
    check(load_config(recipe), devices=8)
    _assert_refused(recipe, override, message, devices=8)


def _assert_refused(recipe, override, message, devices):
    config = apply_overrides(load_config(recipe), [override])
    with pytest.raises(JgenError) as e:
        check(config, devices=devices)
    text = str(e.value)
    assert message in text and override.split("=")[0] in text and "\n" not in text, text


def test_bad_values_cover_every_section():
    sections = {override.split("=")[0].split(".")[0] for _, override, _ in BAD_VALUES}
    assert {"data", "train", "optim", "sample", "diffusion", "model", "condition", "gan", "vae", "ae", "eval"} <= sections
    model_families = {load_config(r).family for r, o, _ in BAD_VALUES if o.startswith("model.")}
    assert model_families == set(base.FAMILIES)


def test_capacity_objective_refuses_micro_batches():
    config = apply_overrides(load_config("betavae_dsprites"), ["vae.objective=capacity", "train.grad_accum=2"])
    with pytest.raises(JgenError, match="train.grad_accum > 1 needs vae.objective=beta"):
        check(config)
    check(apply_overrides(config, ["train.grad_accum=1"]))


def test_halvings_is_the_dcgan_layout():
    from jgen.nn.dcgan import layout

    for size in range(4, 260):
        base_side, k = halvings(size)
        if k < 1:
            with pytest.raises(JgenError):
                layout(size)
        else:
            assert layout(size) == (base_side, k)


def test_config_imports_no_framework():
    code = ("import sys, jgen.config; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('jax', 'flax', 'tensorflow', 'numpy') or m.startswith(('jgen.nn', 'jgen.train', 'jgen.families'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_config_reference_is_current():
    """docs/config.md is generated from base.py and rules.py; regenerate it when a key changes."""
    from jgen.configs.reference import markdown

    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        assert f.read() == markdown(), "docs/config.md is stale: python -m jgen.configs.reference > docs/config.md"
