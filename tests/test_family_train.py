"""The GAN and VAE families through the shared trainer and CLI: 8 devices == 1, exact resume, their commands."""

import signal

import numpy as np
import pytest
from PIL import Image

from helpers import (final_state, jgen, leaves, one_line_error, run_jgen, spawn, tiny_gan_args, tiny_vae_args,
                     wait_for_checkpoint)

WGAN = ["gan.loss=wgan-gp", "gan.n_critic=2", "model.disc_norm=none", "optim.gen.b1=0.0", "optim.disc.b1=0.0"]
# StyleGAN2 at 8 px with every regulariser on each step, style mixing and ADA (p moves after step 0);
# the minibatch-std groups of 4 span devices. The DCGAN with SNGAN's pieces and DiffAugment.
STYLEGAN = ["gan.arch=stylegan2", "model.channel_base=64", "model.channel_max=8", "model.w_dim=8",
            "model.mapping_layers=2", "gan.r1_gamma=1.0", "gan.r1_interval=1", "gan.pl_weight=1.0",
            "gan.pl_interval=1", "gan.style_mixing=0.5", "gan.augment=ada", "gan.ada_interval=1",
            "gan.ada_kimg=0.1", "optim.gen.eps=1.0", "optim.disc.eps=1.0"]
SNGAN = ["model.disc_norm=spectral", "gan.loss=hinge", "gan.augment=diffaug"]
VARIANTS = {"dcgan": (tiny_gan_args, []), "wgan-gp": (tiny_gan_args, WGAN), "stylegan2-ada": (tiny_gan_args, STYLEGAN),
            "sngan-diffaug": (tiny_gan_args, SNGAN),
            # Adam scales near-zero gradients up to +-lr, so sum-order rounding between 8 devices and 1
            # showed up as lr-sized differences in those entries (1.5e-5 at lr 1e-4). eps=1 keeps the
            # step linear in the gradient (lr * g for small g), so a wrong gradient still shows and
            # rounding does not. A ReLU input within rounding of 0 still flips between the two runs
            # (step 0 has one, 4.6e-8, in decoder/project): that image's share of the unit's gradient,
            # ~1e-2 in the kernel, moves those weights by ~lr * 1e-2, 1.1e-4 at lr 1e-2; lr 2e-4 keeps it
            # at 2e-6. C = 0.45 nats from step 1 lies inside the spread of the 2-image shards' KLs
            # (0.36-0.52) and 0.02 from the batch's mean, so |KL - C| averaged per device instead of over
            # the batch fails the check (1.8e-4 at gamma 10); at the default gamma 1000 the KL jumps far
            # from C on every shard and such a bug changed nothing.
            "betavae-capacity": (tiny_vae_args, ["vae.objective=capacity", "vae.gamma=10", "vae.capacity_steps=1",
                                                 "vae.capacity_max=0.45", "optim.lr=2e-4", "optim.eps=1.0"])}


# CI keeps the one that covers the most on 8 devices (BatchNorm statistics, spectral norm and DiffAugment);
# StyleGAN2 with every regulariser and ADA (its update is checked on one device against the PyTorch twin
# and the lazy-regulariser tests), the plain DCGAN, WGAN-GP's critic loop and the capacity VAE are long checks
@pytest.mark.parametrize("variant", [v if v == "sngan-diffaug" else
                                     pytest.param(v, marks=pytest.mark.long) for v in VARIANTS])
def test_eight_devices_match_one(tmp_path, capsys, variant):
    """BatchNorm statistics, the critic loop, both optimisers, the VAE's sampling: 8 fake devices == 1 device
    (the one-device run in this process, the eight-device one in a process of its own)."""
    tiny_args, extra = VARIANTS[variant]
    args = ["train.steps=3", "optim.ema_decay=0.9", *extra]
    jgen(capsys, *tiny_args(tmp_path / "one", *args))
    run_jgen(tiny_args(tmp_path / "eight", *args), devices=8, check=True)
    a, b = final_state(tmp_path / "one"), final_state(tmp_path / "eight")
    assert int(a.step) == int(b.step) == 3
    trees_a = leaves(a.params) + leaves(a.ema_params) + leaves(a.model_state)
    trees_b = leaves(b.params) + leaves(b.ema_params) + leaves(b.model_state)
    assert len(trees_a) == len(trees_b) > 0
    for x, y in zip(trees_a, trees_b):
        assert np.max(np.abs(x - y)) < 1e-5
    if variant in ("dcgan", "sngan-diffaug"):  # BatchNorm running statistics exist and moved from (0, 1)
        stats = a.model_state["gen"]["project_bn"]
        assert np.max(np.abs(np.asarray(stats["mean"]))) > 1e-4
    if variant == "stylegan2-ada":  # w's average, the path-length target and ADA's p all moved from 0
        state = a.model_state
        assert np.max(np.abs(np.asarray(state["gen"]["w_avg"]))) > 0 and float(state["gen"]["pl_mean"]) > 0
        assert float(state["ada"]["p"]) > 0


# the VAE's randomness is a function of the step as the others' is; one kill -9 family keeps CI short
@pytest.mark.parametrize("variant", ["dcgan"])
def test_resume_after_kill_is_bit_exact(tmp_path, capsys, jgen_env, variant):
    """40 steps straight == the same run killed with -9 after its first checkpoint and resumed."""
    tiny_args, extra = VARIANTS[variant]
    steps = ["train.steps=40", "train.ckpt_every=3", "optim.ema_decay=0.9", *extra]
    jgen(capsys, *tiny_args(tmp_path / "straight", *steps))
    args = tiny_args(tmp_path / "cut", *steps)
    proc = spawn(args, jgen_env)
    wait_for_checkpoint(proc, str(tmp_path / "cut"), 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    interrupted_at = int(final_state(tmp_path / "cut").step)
    assert 3 <= interrupted_at < 40
    out, _ = jgen(capsys, *args)
    assert f"at step {interrupted_at}" in out
    a, b = final_state(tmp_path / "straight"), final_state(tmp_path / "cut")
    assert int(a.step) == int(b.step) == 40
    for x, y in zip(leaves(a.params) + leaves(a.ema_params) + leaves(a.opt_state) + leaves(a.model_state),
                    leaves(b.params) + leaves(b.ema_params) + leaves(b.opt_state) + leaves(b.model_state)):
        np.testing.assert_array_equal(x, y)


def test_sample_and_interpolate_from_a_gan_run(tmp_path, capsys):
    jgen(capsys, *tiny_gan_args(tmp_path / "run", "train.steps=2"))
    assert Image.open(tmp_path / "run" / "samples" / "final.png").size == (3 * 10 + 2,) * 2
    out, _ = jgen(capsys, "sample", "--workdir", tmp_path / "run", "--num", 5, "--out", tmp_path / "s.png")
    assert "5 samples from step 2" in out
    images = np.load(tmp_path / "s.npz")["images"]
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.uint8 and images.std() > 0
    out = tmp_path / "i.png"
    jgen(capsys, "interpolate", "--workdir", tmp_path / "run", "--rows", 3, "--cols", 4, "--out", out)
    assert Image.open(out).size == (4 * 10 + 2, 3 * 10 + 2)  # 4 points a row, 3 rows
    # bad input: one line each, nothing written for the refused config
    one_line_error(jgen(capsys, "sample", "--workdir", tmp_path / "run", "--steps", 3, code=2)[1],
                   "applies to diffusion runs")
    one_line_error(jgen(capsys, "sample", "--workdir", tmp_path / "run", "--label", 3, code=2)[1],
                   "applies to diffusion runs")
    one_line_error(jgen(capsys, *tiny_gan_args(tmp_path / "bad", "gan.loss=wgan-gp"), code=2)[1], "disc_norm=none")
    assert not (tmp_path / "bad").exists()
    one_line_error(jgen(capsys, "sample", "--workdir", tmp_path / "run", "--truncation", 0.5, code=2)[1],
                   "--truncation needs a StyleGAN2 run")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    one_line_error(jgen(capsys, "project", "--workdir", tmp_path / "run", "--image", tmp_path / "x.png", code=2)[1],
                   "needs a StyleGAN2 run")
    assert not (tmp_path / "run" / "samples" / "project").exists()


@pytest.mark.long  # projection and masked projection run in test_stylegan.py on CI
def test_stylegan2_samples_truncated_projects_mixes_and_inpaints(tmp_path, capsys):
    run = tmp_path / "run"
    jgen(capsys, *tiny_gan_args(run, "train.steps=2", *STYLEGAN[:5]))
    spread = {}
    for psi in (0.0, 1.0):
        jgen(capsys, "sample", "--workdir", run, "--num", 4, "--truncation", psi, "--out", tmp_path / f"s{psi}.png")
        images = np.load(tmp_path / f"s{psi}.npz")["images"].astype(float)
        assert images.shape == (4, 8, 8, 1)
        spread[psi] = images.std(axis=0).mean()
    assert spread[0.0] < spread[1.0] / 4  # psi 0: every sample the average w's image (only the noise differs)
    one_line_error(jgen(capsys, "sample", "--workdir", run, "--truncation", 1.5, code=2)[1],
                   "--truncation must be in [0, 1], got 1.5")
    Image.fromarray(np.load(tmp_path / "s1.0.npz")["images"][0, :, :, 0]).save(tmp_path / "x.png")
    out, _ = jgen(capsys, "project", "--workdir", run, "--image", tmp_path / "x.png", "--steps", 20,
                  "--features", "none", "--mix", 3, "--w-plus")
    assert "PSNR" in out
    proj = run / "samples" / "project"
    assert Image.open(proj / "project.png").size == (2 * 10 + 2, 10 + 2)
    assert Image.open(proj / "mix.png").size == (3 * 10 + 2, 3 * 10 + 2)
    saved = np.load(proj / "projected.npz")
    assert saved["ws"].shape == (1, 4, 8) and saved["noise0"].shape == (1, 4, 4, 1)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "big.png")
    one_line_error(jgen(capsys, "project", "--workdir", run, "--image", tmp_path / "big.png", code=2)[1],
                   "expected 8x8")
    x = np.asarray(Image.open(tmp_path / "x.png"))
    jgen(capsys, "inpaint", "--workdir", run, "--image", tmp_path / "x.png", "--mask-kind", "half",
         "--steps-project", 20, "--out", tmp_path / "f.png")
    filled = np.asarray(Image.open(tmp_path / "f.png").convert("L"))[2:10, 2:10]  # inside the grid's border
    assert np.array_equal(filled[:, :4], x[:, :4])  # the known left half exactly the input's


def test_vae_reconstruct_and_traverse(tmp_path, capsys):
    jgen(capsys, *tiny_vae_args(tmp_path / "run", "train.steps=2", "vae.prior=normal"))  # grid from N(0, I)
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert all(k in metrics[-1] for k in ("elbo", "bits_per_dim", "active_units", "kl_dim_03"))
    out = tmp_path / "r.png"
    stdout, _ = jgen(capsys, "reconstruct", "--workdir", tmp_path / "run", "--split", "test", "--num", 6,
                     "--out", out)
    assert "6 images of test: ELBO" in stdout and "bits/dim" in stdout
    assert Image.open(out).size == (12 * 10 + 2, 10 + 2)  # 6 (image, reconstruction) pairs in one row
    out = tmp_path / "t.png"
    stdout, _ = jgen(capsys, "traverse", "--workdir", tmp_path / "run", "--cols", 5, "--num", 16, "--out", out)
    assert Image.open(out).size == (5 * 10 + 2, 4 * 10 + 2)  # one row per latent, 5 points each
    assert stdout.count(" z") == 4
    one_line_error(jgen(capsys, "traverse", "--workdir", tmp_path / "run", "--index", 99, "--num", 16, code=2)[1],
                   "--index must be in [0, 16)")


def test_vae_gmm_prior_is_fitted_to_the_training_codes(tmp_path, capsys):
    import jax

    from jgen.data.pipeline import images_at
    from jgen.data.sources import open_source
    from jgen.families import vae
    from jgen.run import open_run

    one_line_error(jgen(capsys, *tiny_vae_args(tmp_path / "bad", "vae.prior_fit_images=2"), code=2)[1],
                   "fits 10 components to 2 images")
    assert not (tmp_path / "bad").exists()
    jgen(capsys, *tiny_vae_args(tmp_path / "run", "train.steps=2", "vae.prior_components=3",
                                "optim.ema_decay=0.9"))
    assert (tmp_path / "run" / "samples" / "final.png").exists()
    run = open_run(str(tmp_path / "run"))
    prior = run.sample_variables()["prior"]
    assert run.sample_variables()["prior"] is prior  # fitted once per step and weights
    raw = run.sample_variables(ema=False)["prior"]  # the raw weights' encoder: another fit
    assert not np.allclose(raw["means"], prior["means"])
    state = run.state
    run.state = state.replace(step=state.step + 1)
    assert run.sample_variables()["prior"] is not prior
    run.state = state
    data = run.config.data
    source = open_source(data.source, data.data_dir)  # 4,500 digits: all fit under prior_fit_images
    codes = np.asarray(vae.encode(run.config, run.variables(), images_at(source, data, range(len(source))))[0],
                       np.float64)
    # EM's M-step makes the mixture's mean the codes' mean, and its weights sum to one
    weights = np.exp(np.asarray(prior["log_weights"], np.float64))
    np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(weights @ np.asarray(prior["means"], np.float64), codes.mean(0), atol=1e-4)
    images = np.asarray(run.sampler(8)(jax.random.PRNGKey(0)))
    assert images.shape == (8, 8, 8, 1) and np.all(np.abs(images) <= 1.0)
    # the sampler draws from the prior it is given: a one-point mixture decodes to that point
    point = {"log_weights": np.zeros(1, np.float32), "means": codes[:1].astype(np.float32),
             "chol": np.zeros((1, 4, 4), np.float32)}
    out = vae.sample(run.config, dict(run.variables(), prior=point), jax.random.PRNGKey(1), 3)
    np.testing.assert_allclose(out, np.repeat(vae.decode(run.config, run.variables(), point["means"]), 3, 0),
                               atol=1e-6)
