"""`jgen sample --label`, inpaint, superres, edit and export on tiny class-conditional and SR3 runs:
the commands end to end, the exactness they promise at the PNG level, and their one-line errors."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, TINY, TINY_STRAIGHT, jgen, one_line_error, random_variables
from jgen import applications
from jgen.config import apply_overrides, load_config
from jgen.data.sources import open_source
from jgen.errors import JgenError
from jgen.families import diffusion
from jgen.run import Run, train
from jgen.sharding import make_mesh
from jgen.train.step import init_state

CFG = os.path.join(ROOT, "configs", "ddpm_mnist5k_cfg.py")
SR3 = os.path.join(ROOT, "configs", "sr3_mnist5k.py")


@pytest.fixture(scope="module")
def cfg_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cfg") / "run"
    # a class-conditional one-block DiT: the applications walk any network, and it compiles quickest
    config = apply_overrides(load_config(CFG), TINY_STRAIGHT + ["train.steps=10"])  # past adaLN-Zero's zero start
    train(config, str(workdir))
    return workdir


def _png(path, array):
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return str(path)


def test_class_conditional_run_samples_a_label(cfg_run, tmp_path, capsys):
    for sampler in ("ddim", "heun", "dpmpp2m"):
        out = tmp_path / f"threes_{sampler}.png"
        jgen(capsys, "sample", "--workdir", cfg_run, "--label", 3, "--guidance", 2.0, "--num", 4, "--out", out,
             "--sampler", sampler)
        assert np.load(str(out).replace(".png", ".npz"))["images"].shape == (4, 8, 8, 1)
    one_line_error(jgen(capsys, "sample", "--workdir", cfg_run, "--label", 10, code=2)[1], "--label must be in [0, 10)")


def test_eval_scores_a_class_run_at_the_guidance_asked_and_refuses_it_elsewhere(cfg_run, straight_run, tmp_path,
                                                                              capsys):
    """`jgen eval --guidance`: the report records the scale, and another scale gives other samples (so other
    scores); on a run without classes it is one line."""
    import json

    cls = tmp_path / "cls"
    jgen(capsys, "train-classifier", "--image-size", 8, "--steps", 10, "--batch-size", 16, "--out", cls)
    scores = {}
    for g in (0.0, 3.0):
        out = tmp_path / f"g{g}.json"
        jgen(capsys, "eval", "--workdir", cfg_run, "--num", 8, "--batch", 8, "--extractor", "classifier",
             "--classifier", cls, "--metrics", "fid", "--cache-dir", tmp_path / "cache", "--guidance", g, "--out", out)
        report = json.loads(out.read_text())
        assert report["guidance"] == g
        scores[g] = report["fid_classifier"]
    assert scores[0.0] != scores[3.0]
    err = jgen(capsys, "eval", "--workdir", straight_run, "--num", 8, "--guidance", 2, code=2)[1]  # unconditional
    one_line_error(err, "--guidance needs a class-conditional run")


def test_inpaint_keeps_known_pixels_of_the_png(cfg_run, tmp_path, capsys):
    image = np.random.default_rng(0).integers(0, 256, (8, 8))
    mask = np.zeros((8, 8))
    mask[2:6, 2:6] = 255
    known = mask == 0
    for sampler in ("ddim", "dpmpp2m"):  # DPM-Solver++ forgets its previous step at each RePaint climb
        out = tmp_path / f"filled_{sampler}.png"
        jgen(capsys, "inpaint", "--workdir", cfg_run, "--image", _png(tmp_path / "in.png", image),
             "--mask", _png(tmp_path / "mask.png", mask), "--jump", 1, "--resample", 2, "--out", out,
             "--sampler", sampler)
        filled = np.asarray(Image.open(out))[2:-2, 2:-2]  # the grid's 2-pixel border
        np.testing.assert_array_equal(filled[known], image[known])
        assert np.any(filled[~known] != image[~known])
    one_line_error(jgen(capsys, "inpaint", "--workdir", cfg_run, "--image", tmp_path / "in.png", code=2)[1], "--mask")


def test_export_writes_class_folders_that_the_folder_source_reads(cfg_run, tmp_path, capsys):
    out = tmp_path / "synthetic"
    jgen(capsys, "export", "--workdir", cfg_run, "--num", 23, "--batch", 10, "--out", out)
    assert sorted(os.listdir(out)) == [str(c) for c in range(10)]
    assert len(os.listdir(out / "2")) == 3 and len(os.listdir(out / "9")) == 2
    source = open_source(f"folder:{out}")
    assert len(source) == 23 and source.num_classes == 10
    paths, labels = zip(*(source[i] for i in range(len(source))))
    assert all(int(os.path.basename(os.path.dirname(p))) == y for p, y in zip(paths, labels))


def test_superres_cli_checks_the_input_size(cfg_run, tmp_path, capsys):
    """A run not trained on low-resolution inputs super-resolves by ILVR (a class-conditional one
    unguided): the output's 4x4 block means are the input's pixels, up to uint8 rounding."""
    out = tmp_path / "high.png"
    low = _png(tmp_path / "low.png", [[0, 255], [255, 0]])  # 8 px model, scale 4: 2x2 input
    jgen(capsys, "superres", "--workdir", cfg_run, "--image", low, "--out", out)
    high = np.asarray(Image.open(out), np.float64)[2:-2, 2:-2]  # the grid's border
    np.testing.assert_allclose(high.reshape(2, 4, 2, 4).mean(axis=(1, 3)), [[0, 255], [255, 0]], atol=0.6)
    one_line_error(jgen(capsys, "superres", "--workdir", cfg_run, "--image", low, "--scale", 2, code=2)[1],
                   "expected 4x4")


def test_sr3_uses_its_low_resolution_input():
    config = apply_overrides(load_config(SR3), TINY)
    state = init_state(diffusion, config, jax.random.PRNGKey(0))
    # random weights everywhere: at init the output layer is zero, whatever the input
    net = random_variables(diffusion.make_model(config), np.random.default_rng(0), jnp.zeros((1, 8, 8, 2)),
                           jnp.zeros((1,)))["params"]
    run = Run(config, diffusion, state.replace(ema_params=net), make_mesh(), "")
    low = jax.random.uniform(jax.random.PRNGKey(1), (2, 2, 2, 1), minval=-1, maxval=1)
    a, b = (applications.superres(run, lo, 4, jax.random.PRNGKey(2)) for lo in (low, -low))
    assert a.shape == (2, 8, 8, 1) and float(jnp.max(jnp.abs(a - b))) > 1e-3
    with pytest.raises(JgenError, match="upsamples by 4, not 2"):
        applications.superres(run, low, 2, jax.random.PRNGKey(2))


def test_class_count_must_match_the_data(tmp_path):
    config = apply_overrides(load_config(CFG), TINY + ["condition.num_classes=7"])
    with pytest.raises(JgenError, match="condition.num_classes is 7"):
        train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "config.json")
