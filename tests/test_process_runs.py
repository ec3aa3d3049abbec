"""The continuous processes and the DiT through the trainer and the CLI: the flow, EDM and DiT recipes
train and sample, the applications walk with a continuous process, `eval --metrics nll` gives the
ODE's bits/dim, and a run is never resumed as another process."""

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, TINY, TINY_DIT, TINY_STRAIGHT, jgen, one_line_error, tiny_train_args

RECIPE = {name: f"{ROOT}/configs/{name}.py" for name in ("flow_mnist5k", "edm_mnist5k", "dit_mnist5k")}


# EDM's recipe also trains (test_process_samplers) and lowers (test_lowering) in CI; its CLI run is a long check
@pytest.mark.parametrize("name", [pytest.param("edm_mnist5k", marks=pytest.mark.long), "dit_mnist5k"])
def test_recipe_trains_and_samples(tmp_path, capsys, name):
    tiny = TINY_DIT if name == "dit_mnist5k" else TINY
    jgen(capsys, *tiny_train_args(tmp_path / "run", "train.steps=2", config=RECIPE[name], tiny=tiny))
    out = tmp_path / "grid.png"
    jgen(capsys, "sample", "--workdir", tmp_path / "run", "--num", 4, "--out", out)
    img = np.asarray(Image.open(out))
    assert img.ndim == 2 and img.std() > 0  # a grid of four 8x8 samples, not a blank


def test_a_flow_run_samples_edits_and_scores(tmp_path, capsys):
    """One tiny flow-matching run (a one-block DiT, the quickest network to compile; 4 steps), then: Heun and
    the SDE sampler; DDPM's refused in one line; RePaint keeps the known pixels exactly and fills the hole;
    SDEdit and ILVR run; `eval --metrics nll` gives the ODE's bits/dim and no bound."""
    import json
    run = tmp_path / "run"
    jgen(capsys, *tiny_train_args(run, "train.steps=4", config=RECIPE["flow_mnist5k"], tiny=TINY_STRAIGHT))
    for sampler in ("heun", "sde"):  # Euler is Heun's predictor; DPM-Solver++ runs in the inpainting below
        out = tmp_path / f"{sampler}.png"
        jgen(capsys, "sample", "--workdir", run, "--num", 4, "--sampler", sampler, "--steps", 3, "--out", out)
        x = np.load(str(out).replace(".png", ".npz"))["images"]
        assert x.shape == (4, 8, 8, 1) and x.std() > 0, sampler
    one_line_error(jgen(capsys, "sample", "--workdir", run, "--num", 4, "--sampler", "ddpm", code=2)[1],
                   "steps through DDPM's discrete levels")

    image = np.random.default_rng(0).integers(0, 256, (8, 8)).astype(np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    known = mask == 0
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "filled.png"  # DPM-Solver++: a multistep solver's memory must survive RePaint's climbs
    jgen(capsys, "inpaint", "--workdir", run, "--image", tmp_path / "in.png", "--mask", tmp_path / "mask.png",
         "--jump", 1, "--resample", 2, "--out", out, "--sampler", "dpmpp2m")
    filled = np.asarray(Image.open(out))[2:-2, 2:-2]  # the grid's 2-pixel border
    np.testing.assert_array_equal(filled[known], image[known])
    assert np.any(filled[~known] != image[~known])
    jgen(capsys, "edit", "--workdir", run, "--image", tmp_path / "in.png", "--strength", 0.5,
         "--out", tmp_path / "edited.png")
    Image.fromarray(image[::2, ::2]).save(tmp_path / "low.png")
    jgen(capsys, "superres", "--workdir", run, "--image", tmp_path / "low.png", "--scale", 2,
         "--out", tmp_path / "up.png")

    report = tmp_path / "nll.json"
    jgen(capsys, "eval", "--workdir", run, "--metrics", "nll", "--num", 4, "--nll-steps", 2, "--out", report)
    report = json.load(open(report))
    assert "nll_ode_bpd" in report and "nll_vlb_bpd" not in report and np.isfinite(report["nll_ode_bpd"])


def test_a_discrete_run_is_not_resumed_as_flow(tmp_path, capsys):
    """The refusal comes from the workdir's config.json, before anything is traced or written."""
    from jgen.config import apply_overrides, load_config, save_config
    (tmp_path / "run").mkdir()
    save_config(apply_overrides(load_config("ddpm_mnist5k"), TINY), str(tmp_path / "run" / "config.json"))
    _, err = jgen(capsys, *tiny_train_args(tmp_path / "run", "train.steps=4", "diffusion.process=flow",
                                           "diffusion.prediction=velocity"), code=2)
    one_line_error(err, "diffusion.process 'discrete' -> 'flow'")
    assert not (tmp_path / "run" / "checkpoints").exists()
