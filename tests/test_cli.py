"""The command line as a user meets it: every bad config value is one line and exit 2 before anything
is written, whatever the section; a --config that is not a config is one line too; --help explains."""

import os

import pytest

from bad_configs import BAD_VALUES, BAD_VALUES_ON_8_DEVICES
from helpers import jgen, one_line_error, run_jgen, tiny_train_args


@pytest.mark.parametrize("recipe, override, message", BAD_VALUES)
def test_a_bad_value_is_one_line_and_writes_nothing(tmp_path, capsys, recipe, override, message):
    workdir = tmp_path / "run"
    _, err = jgen(capsys, "train", "--config", recipe, "--workdir", workdir, "--set", override, code=2)
    one_line_error(err, message)
    assert override.split("=")[0] in err or "train.batch_size" in err
    assert not workdir.exists()


def test_a_batch_that_does_not_split_over_the_devices_is_one_line(tmp_path):
    """8 fake devices need a process of their own; the check runs before the workdir is made."""
    for i, (recipe, override, message) in enumerate(BAD_VALUES_ON_8_DEVICES):
        proc = run_jgen(["train", "--config", recipe, "--workdir", str(tmp_path / str(i)), "--set", override],
                        devices=8)
        assert proc.returncode == 2
        one_line_error(proc.stderr, message)
        assert not (tmp_path / str(i)).exists()


@pytest.mark.parametrize("text, message", [
    (None, "is not a Python file"),
    ("x = 1\n", "defines no get_config()"),
    ("def get_config():\n    return {'family': 'gan'}\n", "not an ml_collections.ConfigDict"),
    ("def get_config():\n    raise ValueError('broken recipe')\n", "ValueError: broken recipe"),
    ("def get_config(:\n", "failed to load: SyntaxError"),
])
def test_a_config_that_is_not_a_config_is_one_line(tmp_path, capsys, text, message):
    path = tmp_path / ("notes.txt" if text is None else "c.py")
    path.write_text("hello" if text is None else text)
    _, err = jgen(capsys, "train", "--config", path, "--workdir", tmp_path / "run", code=2)
    one_line_error(err, message)
    assert not (tmp_path / "run").exists()
    one_line_error(jgen(capsys, "train", "--config", "ddpm_mnist6k", code=2)[1], "neither a file nor a packaged recipe")


def test_overrides_are_for_train_and_help_names_the_recipes(capsys):
    one_line_error(jgen(capsys, "sample", "--workdir", "x", "--config.train.steps=3", code=2)[1],
                   "config overrides apply to `jgen train`")
    with pytest.raises(SystemExit):
        jgen(capsys, "train", "--help")
    assert "ddpm_mnist5k" in capsys.readouterr().out


def test_bfloat16_on_a_gpu_without_bf16_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """The mesh's devices are the training machine's; here a V100 (compute capability 7.0) stands in.
    float32 on it and bfloat16 on Ampere, Hopper and the CPU pass the check."""
    import types

    import jax
    import numpy as np

    from jgen import run
    from jgen.config import apply_overrides, load_config
    from jgen.configs.rules import check_hardware

    def gpu(kind, capability):
        return types.SimpleNamespace(platform="gpu", device_kind=kind, compute_capability=capability)

    v100 = gpu("Tesla V100-SXM2-16GB", "7.0")
    monkeypatch.setattr(run, "make_mesh", lambda: types.SimpleNamespace(devices=np.array([v100])))
    workdir = tmp_path / "run"
    _, err = jgen(capsys, "train", "--config", "dcgan_mnist5k", "--workdir", workdir,
                  "--set", "train.compute_dtype=bfloat16", code=2)
    one_line_error(err, "train.compute_dtype=bfloat16 needs a GPU of compute capability 8.0")
    assert "Tesla V100-SXM2-16GB has 7.0" in err and not workdir.exists()
    bf16 = apply_overrides(load_config("dcgan_mnist5k"), ["train.compute_dtype=bfloat16"])
    for devices in ([gpu("NVIDIA A100-SXM4-80GB", "8.0"), gpu("NVIDIA H200", "9.0")], jax.devices()):
        check_hardware(bf16, devices)
    check_hardware(load_config("dcgan_mnist5k"), [v100])


def test_a_data_cache_that_would_not_fit_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from jgen.data import pipeline

    monkeypatch.setattr(pipeline, "available_memory", lambda: 2 ** 20)  # a 1 MiB machine
    workdir = tmp_path / "run"
    _, err = jgen(capsys, "train", "--config", "dcgan_mnist5k", "--workdir", workdir, "--set", "data.cache=true",
                  code=2)
    one_line_error(err, "data.cache=true would hold")
    assert "set data.cache=false" in err and not workdir.exists()


def _tree(path) -> dict:
    """{relative path: (size, mtime)} of every file under `path`: what a refused command must leave as it was."""
    out = {}
    for d, _, names in os.walk(path):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, path)] = (os.path.getsize(p), os.path.getmtime(p))
    return out


# every command that opens a run, with the output flag each writes to (None: its output is the workdir's)
RUN_COMMANDS = {"sample": "--out", "export": "--out", "interpolate": "--out", "eval": "--out",
                "edit": "--out", "reconstruct": "--out"}
EXTRA = {"edit": ["--image", "IMAGE"], "reconstruct": [], "export": ["--num", "4", "--out", "EXPORT"]}


@pytest.mark.parametrize("command", sorted(RUN_COMMANDS) + ["train"])
@pytest.mark.parametrize("kind", ["workdir_is_a_file", "output_under_a_file", "damaged_config"])
def test_wrong_paths_and_damaged_runs_are_one_line_and_touch_nothing(tmp_path, capsys, straight_run, command, kind):
    """A path of the wrong kind, an output that cannot be written and a damaged config.json: one line, exit 2,
    before any work, the run's files (checkpoints included) untouched and nothing new written."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(straight_run, run)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    if kind == "damaged_config":
        (run / "config.json").write_text('{"family": "diffusion", "data": {')
    before = _tree(tmp_path)
    workdir = a_file if kind == "workdir_is_a_file" else run
    paths = {"IMAGE": str(straight_run / "samples" / "final.png"), "EXPORT": str(tmp_path / "exported")}
    extra = [paths.get(e, e) for e in EXTRA.get(command, [])]
    if command == "train":
        args = tiny_train_args(workdir)
        expect = {"workdir_is_a_file": "is a file, not a run directory", "damaged_config": "is damaged",
                  "output_under_a_file": "is a file, not a directory"}[kind]
        if kind == "output_under_a_file":
            args = tiny_train_args(a_file / "sub")
    else:
        args = [command, "--workdir", str(workdir), *extra]
        if kind == "output_under_a_file":
            args += [RUN_COMMANDS[command], str(a_file / ("out" if command == "export" else "out.png"))]
        expect = {"workdir_is_a_file": "is a file, not a run directory", "damaged_config": "is damaged",
                  "output_under_a_file": "is a file, not a directory"}[kind]
    _, err = jgen(capsys, *args, code=2)
    one_line_error(err, expect)
    assert _tree(tmp_path) == before
