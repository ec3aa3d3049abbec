"""Latent runs (data.source=latents:AE_WORKDIR): the cache is the autoencoder's encoding of the images times the
measured 1 / std; two processes train as one; a killed run resumes bit-exact; an autoencoder changed since is
refused; samples are decoded images; and every bad source is one line, exit 2, nothing written."""

import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import (ROOT, assert_same, final_state, free_port, jgen, multiprocess_env, one_line_error, spawn,
                     wait_for_checkpoint)
from jgen import latent
from jgen.data.pipeline import images_at
from jgen.data.sources import open_source
from jgen.families import autoencoder
from jgen.sharding import make_mesh

from conftest import AE_TINY

AE_RECIPE = os.path.join(ROOT, "configs", "ae_mnist5k.py")
FLOW_RECIPE = os.path.join(ROOT, "configs", "flow_mnist5k.py")
# a DiT on the 4 x 4 x 2 latents, one token per latent pixel
DIT_TINY = ["model.arch=dit", "model.patch_size=1", "model.hidden=16", "model.depth=1", "model.heads=2",
            "train.batch_size=8", "train.log_every=1", "sample.num=4", "sample.steps=2", "optim.warmup_steps=1",
            "optim.ema_decay=0.9"]


def _args(config, workdir, overrides):
    return ["train", "--config", config, "--workdir", str(workdir), *sum((["--set", o] for o in overrides), [])]


def latent_args(root, workdir, *extra):
    return _args(FLOW_RECIPE, workdir, DIT_TINY + [f"data.source=latents:{root / 'ae'}", "data.image_size=8",
                                                   f"data.latent_cache={root / 'cache'}", *extra])


def test_cache_is_the_scaled_posterior_mean_of_every_image(ae_run):
    from jgen.config import apply_overrides, load_config

    config = apply_overrides(load_config(FLOW_RECIPE), [f"data.source=latents:{ae_run / 'ae'}", "data.image_size=8",
                                                       f"data.latent_cache={ae_run / 'cache'}"])
    mesh = make_mesh()
    run_config, source, ae = latent.prepare(config, str(ae_run / "unused"), mesh)
    assert (run_config.data.image_size, run_config.data.channels) == (4, 2)
    assert config.sample.clip and not run_config.sample.clip  # x0 of unit-variance latents is not clipped to +-1
    images = open_source("builtin:mnist5k:train")
    assert len(source) == len(images) == 4500
    idx = np.array([0, 1, 2345, 4499])
    x = images_at(images, ae.config.data, idx)  # the 8 px digits the autoencoder was trained on
    with jax.default_matmul_precision("highest"):
        mean = np.asarray(autoencoder.encode(ae.config, ae.variables, jnp.asarray(x))[0], np.float64)
    raw, _, _, _ = latent.cached_latents(ae, config)
    scale = 1.0 / np.std(np.asarray(raw, np.float64))  # over the whole cache, in float64
    np.testing.assert_allclose(run_config.data.latent_scale, scale, rtol=1e-6)
    got = np.stack([source[int(i)][0] for i in idx])
    np.testing.assert_allclose(got, mean * scale, rtol=1e-4, atol=1e-5)
    assert [source[int(i)][1] for i in idx] == [images[int(i)][1] for i in idx]


def test_latent_samples_are_not_clipped_to_the_image_range():
    """Unit-variance latents reach +-4 (a third of a standard normal lies outside +-1), so a latent run's
    sampler hands them to the decoder unclipped, where a pixel run's images end in [-1, 1]. At initialisation
    the DiT's adaLN-Zero output is zero: the flow's velocity is 0 and each sample is its starting noise."""
    from jgen.config import apply_overrides, load_config
    from jgen.families import diffusion

    ae_config = apply_overrides(load_config(AE_RECIPE), AE_TINY)
    pixel = apply_overrides(load_config(FLOW_RECIPE), DIT_TINY + ["data.image_size=4", "data.channels=2"])
    planned = latent.planned_config(apply_overrides(load_config(FLOW_RECIPE), DIT_TINY), ae_config)
    assert (planned.data.image_size, planned.data.channels) == (4, 2)
    for config, clipped in ((pixel, True), (planned, False)):
        params = diffusion.init(config, jax.random.PRNGKey(0))[0]
        x = np.asarray(diffusion.sample(config, {"params": params}, jax.random.PRNGKey(1), num=8))
        noise = np.asarray(jax.random.normal(jax.random.PRNGKey(1), x.shape))
        assert np.abs(x).max() <= 1.0 if clipped else np.abs(x).max() > 2.0
        assert np.mean(np.abs(x) > 1.0) == (0.0 if clipped else pytest.approx(np.mean(np.abs(noise) > 1.0), abs=0.1))


@pytest.mark.long
def test_killed_latent_run_resumes_bit_exact(ae_run, tmp_path, capsys, jgen_env):
    steps = ["train.steps=8", "train.ckpt_every=3"]
    jgen(capsys, *latent_args(ae_run, tmp_path / "straight", *steps))
    args = latent_args(ae_run, tmp_path / "cut", *steps)
    proc = spawn(args, jgen_env)
    wait_for_checkpoint(proc, str(tmp_path / "cut"), 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    at = int(final_state(tmp_path / "cut").step)
    out, _ = jgen(capsys, *args)
    assert f"at step {at}" in out
    assert_same(final_state(tmp_path / "straight"), final_state(tmp_path / "cut"))


@pytest.mark.long
def test_two_processes_train_as_one(ae_run, tmp_path, capsys):
    """Each process encodes every other image and reads its rows of each batch: the same trajectory as one
    process on one device (its own cache files, gathered from both)."""
    steps = ["train.steps=2", "train.ckpt_every=2", "sample.num=2"]
    jgen(capsys, *latent_args(ae_run, tmp_path / "one", *steps))
    port = free_port()
    args = latent_args(ae_run, tmp_path / "two", *steps)
    procs = [subprocess.Popen([sys.executable, "-m", "jgen.cli", *args, "--coordinator", f"localhost:{port}",
                               "--num-processes", "2", "--process-id", str(i)], cwd=ROOT, env=multiprocess_env(1),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    assert sorted(f for f in os.listdir(ae_run / "cache") if "of2" in f)  # each process wrote its own copy
    assert_same(final_state(tmp_path / "one"), final_state(tmp_path / "two"), tol=1e-5)


def test_latent_run_decodes_refuses_pixel_commands_and_a_changed_autoencoder(ae_run, tmp_path, capsys):
    shutil.copytree(ae_run / "ae", tmp_path / "ae")
    root = tmp_path
    run = tmp_path / "ldm"
    jgen(capsys, *latent_args(root, run, "train.steps=1", "train.ckpt_every=1"))
    jgen(capsys, "sample", "--workdir", str(run), "--num", "4")
    with np.load(run / "samples" / "sample.npz") as f:
        images = next(iter(f.values()))
    assert images.shape[1:] == (8, 8, 1)  # decoded: the autoencoder's images, not 4 x 4 x 2 latents
    _, err = jgen(capsys, "edit", "--workdir", str(run), "--image", str(run / "samples" / "final.png"), code=2)
    one_line_error(err, "works in pixel space")
    _, err = jgen(capsys, "eval", "--workdir", str(run), "--metrics", "nll", code=2)
    one_line_error(err, "likelihood of the autoencoder's latents")
    jgen(capsys, *_args(AE_RECIPE, tmp_path / "ae", AE_TINY + ["train.steps=3", "train.ckpt_every=1"]))
    before = sorted(os.listdir(run / "checkpoints"))
    _, err = jgen(capsys, *latent_args(root, run, "train.steps=2", "train.ckpt_every=1"), code=2)
    one_line_error(err, "changed since this run cached its latents (step 2-")
    _, err = jgen(capsys, "sample", "--workdir", str(run), code=2)
    one_line_error(err, "changed since")
    assert sorted(os.listdir(run / "checkpoints")) == before


def test_bad_latent_sources(ae_run, tmp_path, capsys):
    (tmp_path / "empty_ae").mkdir()
    shutil.copy(ae_run / "ae" / "config.json", tmp_path / "empty_ae" / "config.json")
    cases = [(f"latents:{tmp_path / 'nothing'}", [], "is not a jgen run directory"),
             (f"latents:{tmp_path / 'empty_ae'}", [], "has no checkpoint: train it first"),
             (f"latents:{ae_run / 'ae'}", ["data.image_size=16"], "takes 8px images of 1 channel(s)"),
             # judged at the latents' side (4), not the images' (8)
             (f"latents:{ae_run / 'ae'}", ["model.arch=unet", "model.ch_mult=(1,2,2,2)"],
              "data.image_size=4 must be divisible by 2^3=8")]
    for source, extra, message in cases:
        args = _args(FLOW_RECIPE, tmp_path / "w", DIT_TINY + [f"data.source={source}", "data.image_size=8", *extra])
        _, err = jgen(capsys, *args, code=2)
        one_line_error(err, message)
        assert not (tmp_path / "w").exists()
    gan = tmp_path / "gan"
    (gan).mkdir()
    (gan / "config.json").write_text((ae_run / "ae" / "config.json").read_text().replace(
        '"family": "autoencoder"', '"family": "gan"'))
    _, err = jgen(capsys, *_args(FLOW_RECIPE, tmp_path / "w", DIT_TINY + [f"data.source=latents:{gan}"]), code=2)
    one_line_error(err, "that is a gan run, not an autoencoder run")
    assert not (tmp_path / "w").exists()


def test_a_cache_that_would_not_fit_is_one_line_and_writes_nothing(ae_run, tmp_path, capsys, monkeypatch):
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(latent.shutil, "disk_usage", lambda path: usage(10 ** 6, 10 ** 6 - 1000, 1000))
    args = _args(FLOW_RECIPE, tmp_path / "w", DIT_TINY + [f"data.source=latents:{ae_run / 'ae'}", "data.image_size=8",
                                                         f"data.latent_cache={tmp_path / 'cache'}"])
    _, err = jgen(capsys, *args, code=2)
    one_line_error(err, "set data.latent_cache to a larger disk")
    assert not (tmp_path / "w").exists() and not os.listdir(tmp_path / "cache")
