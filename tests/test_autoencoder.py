"""The KL autoencoder family: its update against the objective's gradients taken term by term (Esser et al.'s
adaptive weight from its definition), the discriminator held until disc_start, PSNR and the perceptual
term against NumPy, diffusers' AutoencoderKL import (parity with a random diffusers model, when diffusers is
installed), and a run trained, evaluated (PSNR, rFID) and refused where its config cannot work."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import jgen, one_line_error
from jgen.config import apply_overrides, load_config
from jgen.errors import JgenError
from jgen.families import autoencoder as A
from jgen.families.gan import disc_loss, gen_loss_of
from jgen.families.vae import kl_normal
from jgen.nn.classifier import Classifier, save_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "configs", "ae_mnist5k.py")
TINY = ["data.image_size=8", "model.ch=8", "model.ch_mult=(1,2)", "model.num_groups=4", "model.z_channels=2",
        "ae.disc_layers=1", "ae.disc_ndf=8", "ae.disc_weight=0.5"]


def tiny_config(*extra):
    return apply_overrides(load_config(RECIPE), TINY + list(extra))


@pytest.fixture(scope="module")
def tiny():
    c = tiny_config()
    params, state = jax.jit(lambda k: A.init(c, k))(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 8, 8, 1), minval=-1, maxval=1)
    return c, params, state, x


def _reference_grads(c, params, x):
    """(d(L_rec + kl_weight KL)/dtheta, dL_G/dtheta, dL_D/dphi, lambda by eq. 7), each by its own jax.grad."""
    model, disc = A.make_model(c), A.make_disc(c)
    eps = jax.random.normal(jax.random.PRNGKey(2), (x.shape[0],) + A.latent_shape(c))

    def recon(p):
        mean, logvar = model.apply({"params": p}, x, method=model.encode)
        return model.apply({"params": p}, mean + jnp.exp(0.5 * logvar) * eps, method=model.decode), mean, logvar

    def rec_kl(p):
        r, mean, logvar = recon(p)
        kl = jnp.mean(jnp.sum(kl_normal(mean, logvar), axis=(1, 2, 3)))
        return jnp.mean(jnp.sum(jnp.abs(x - r), axis=(1, 2, 3))) + c.ae.kl_weight * kl

    def adv(p):
        return gen_loss_of("hinge", disc.apply({"params": params["disc"]}, recon(p)[0]))

    @jax.jit
    def grads(params):
        fake = recon(params["gen"])[0]
        g_disc = jax.grad(lambda d: disc_loss("hinge", disc.apply({"params": d}, x),
                                              disc.apply({"params": d}, fake)))(params["disc"])
        return jax.grad(rec_kl)(params["gen"]), jax.grad(adv)(params["gen"]), g_disc

    with jax.default_matmul_precision("highest"):
        g_rec, g_adv, g_disc = grads(params)
    last = lambda g: np.asarray(g["decoder"]["conv_out"]["kernel"], np.float64)
    lam = c.ae.disc_weight * np.clip(np.linalg.norm(last(g_rec)) / (np.linalg.norm(last(g_adv)) + 1e-4), 0, 1e4)
    return g_rec, g_adv, g_disc, lam


def test_update_is_the_objective_with_the_adaptive_weight(tiny):
    """Before ae.disc_start: the reconstruction and KL gradients alone, the discriminator untouched; from it
    on: plus lambda times the adversarial gradient, and the discriminator's own step (SGD at rate 1 moves
    each parameter by its gradient). With ae.disc_weight=0 (the recipe's: no discriminator) the step past
    disc_start is the first case's."""
    c, params, state, x = tiny
    c = apply_overrides(c, ["ae.disc_start=5"])
    txs = {"gen": optax.sgd(1.0), "disc": optax.sgd(1.0)}
    opt = {k: txs[k].init(params[k]) for k in txs}
    no_disc = apply_overrides(c, ["ae.disc_weight=0"])
    with jax.default_matmul_precision("highest"):
        step, step_no_disc = (jax.jit(lambda p, o, s, cc=cc: A.update(cc, txs, p, o, state, {"image": x},
                                                                      jax.random.PRNGKey(2), s)) for cc in (c, no_disc))
        # the step index is traced: one compile per config
        runs = {"off": step(params, opt, jnp.int32(4)), "on": step(params, opt, jnp.int32(5)),
                "no_disc": step_no_disc(params, opt, jnp.int32(5))}
    g_rec, g_adv, g_disc, lam = _reference_grads(c, params, x)
    for case, (new, _, _, metrics) in runs.items():
        on = case == "on"
        want = jax.tree.map(lambda a, b: a + (lam if on else 0.0) * b, g_rec, g_adv)
        moved = jax.tree.map(lambda a, b: a - b, params["gen"], new["gen"])
        for got, w in zip(jax.tree.leaves(moved), jax.tree.leaves(want)):
            np.testing.assert_allclose(got, w, rtol=2e-3, atol=2e-5)
        if case == "no_disc":  # nothing adversarial ran, so nothing adversarial is reported
            assert not {"d_weight", "d_loss", "g_loss"} & set(metrics)
        else:
            np.testing.assert_allclose(float(metrics["d_weight"]), lam if on else 0.0, rtol=1e-3)
        d_moved = jax.tree.map(lambda a, b: a - b, params["disc"], new["disc"])
        for got, w in zip(jax.tree.leaves(d_moved), jax.tree.leaves(g_disc)):
            np.testing.assert_allclose(got, w if on else np.zeros_like(w), rtol=2e-3, atol=2e-6)


def test_shapes_and_psnr(tiny):
    c, params, _, x = tiny
    v = {"params": params["gen"]}
    mean, logvar = A.encode(c, v, x)
    assert mean.shape == logvar.shape == (4, 4, 4, 2) == (4,) + A.latent_shape(c)
    assert A.decode(c, v, mean).shape == x.shape
    y = np.clip(np.asarray(x) + 0.1 * np.random.RandomState(0).randn(*x.shape), -1, 1)
    want = [10 * np.log10(4.0 / np.mean((np.float64(a) - b) ** 2)) for a, b in zip(np.asarray(x), y)]
    np.testing.assert_allclose(A.psnr(x, jnp.asarray(y, jnp.float32)), want, rtol=1e-5)


def _write_classifier(path, side=8):
    """A random `jgen train-classifier` directory (the weights file format of jgen.nn.classifier)."""
    params = Classifier(10).init(jax.random.PRNGKey(3), jnp.zeros((1, side, side, 1)))["params"]
    save_classifier(path, params, {"num_classes": 10, "image_size": side, "channels": 1})
    return params


def test_perceptual_term_is_the_unit_normalised_feature_distance(tmp_path, tiny):
    c, _, _, x = tiny
    params = _write_classifier(str(tmp_path / "clf"))
    y = jnp.clip(x + 0.3 * jax.random.normal(jax.random.PRNGKey(4), x.shape), -1, 1)
    got = np.asarray(A.perceptual(str(tmp_path / "clf"), x, y))
    # NumPy: the classifier's five 3x3 convolutions (strides 1, 2, 1, 2, 2; SAME) by explicit patches
    def maps(img):
        out, h = [], np.asarray(img, np.float64)
        for i, stride in enumerate((1, 2, 1, 2, 2)):
            k = np.asarray(params[f"conv{i}"]["kernel"], np.float64)
            b = np.asarray(params[f"conv{i}"]["bias"], np.float64)
            n, s = h.shape[0], h.shape[1]
            o = -(-s // stride)
            pad = max((o - 1) * stride + 3 - s, 0)
            hp = np.pad(h, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
            z = np.zeros((n, o, o, k.shape[-1]))
            for di in range(3):
                for dj in range(3):
                    z += np.einsum("nhwc,cd->nhwd", hp[:, di:di + stride * o:stride, dj:dj + stride * o:stride], k[di, dj])
            z += b
            out.append(z)
            h = np.maximum(z, 0)
        return out
    unit = lambda a: a / np.sqrt(np.sum(a ** 2, -1, keepdims=True) + 1e-10)
    want = sum(np.mean(np.sum((unit(a) - unit(b)) ** 2, -1), axis=(1, 2)) for a, b in zip(maps(x), maps(y)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert np.allclose(A.perceptual(str(tmp_path / "clf"), x, x), 0.0, atol=1e-6)
    c2 = apply_overrides(c, [f"ae.perceptual={tmp_path / 'clf'}", "ae.perceptual_weight=0.5"])
    l1 = np.sum(np.abs(np.asarray(x) - np.asarray(y)), axis=(1, 2, 3))
    np.testing.assert_allclose(A.nll(c2, x, y), l1 + 0.5 * 64 * want, rtol=1e-4)


def _diffusers_model():
    diffusers = pytest.importorskip("diffusers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = diffusers.AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
                                    latent_channels=4, norm_num_groups=32, sample_size=16,
                                    down_block_types=("DownEncoderBlock2D",) * 2,
                                    up_block_types=("UpDecoderBlock2D",) * 2).eval()
    with torch.no_grad():  # move the norms' scales and the zero biases off their initial values
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return torch, model


def test_diffusers_autoencoder_parity():
    from jgen.diffusion.pretrained_ae import ae_overrides, ae_params_from_diffusers

    torch, model = _diffusers_model()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    c = apply_overrides(load_config(RECIPE), ae_overrides(dict(model.config)) + ["data.image_size=16"])
    like = jax.eval_shape(lambda k: A.init(c, k), jax.random.PRNGKey(0))[0]["gen"]
    params = {"params": ae_params_from_diffusers(state, like)}
    x = np.random.RandomState(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    z = np.random.RandomState(1).randn(2, 8, 8, 4).astype(np.float32)
    with jax.default_matmul_precision("highest"):
        mean, logvar = A.encode(c, params, jnp.asarray(x))
        y = A._apply(c, params["params"], jnp.asarray(z), A.AutoencoderKL.decode)
    with torch.no_grad():
        post = model.encode(torch.from_numpy(x).permute(0, 3, 1, 2)).latent_dist
        want_y = model.decode(torch.from_numpy(z).permute(0, 3, 1, 2)).sample.permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(mean, post.mean.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(logvar, post.logvar.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(y, want_y, atol=1e-5)


def test_import_refusals():
    from jgen.diffusion.pretrained_ae import ae_overrides, ae_params_from_diffusers

    with pytest.raises(JgenError, match="act_fn"):
        ae_overrides({"act_fn": "gelu"})
    with pytest.raises(JgenError, match="UNet2DModel"):
        ae_overrides({"_class_name": "UNet2DModel"})
    c = tiny_config()
    like = jax.eval_shape(lambda k: A.init(c, k), jax.random.PRNGKey(0))[0]["gen"]
    with pytest.raises(JgenError, match="no place"):
        ae_params_from_diffusers({"encoder.down_blocks.7.resnets.0.norm1.weight": np.zeros(8, np.float32)}, like)
    with pytest.raises(JgenError, match="lack"):
        ae_params_from_diffusers({"encoder.conv_in.bias": np.zeros(8, np.float32)}, like)


def test_eval_reports_psnr_and_rfid(ae_run, tmp_path, capsys):
    """The shared tiny run (tests/conftest.py: discriminator from step 1) logged its adaptive weight from step 1;
    `jgen eval` scores its reconstructions of the reference images."""
    run = ae_run / "ae"
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert rows[0]["d_weight"] == 0.0 and rows[-1]["d_weight"] > 0.0
    clf = str(tmp_path / "clf")
    _write_classifier(clf)
    out_json = tmp_path / "report.json"
    out, _ = jgen(capsys, "eval", "--workdir", str(run), "--num", "16", "--batch", "8", "--extractor", "classifier",
                  "--classifier", clf, "--cache-dir", str(tmp_path / "cache"), "--out", str(out_json))
    report = json.load(open(out_json))
    assert report["samples"] == "reconstructed reference" and "PSNR" in out
    assert 0 < report["psnr"] < 60 and report["fid_classifier"] >= 0


def test_import_autoencoder_makes_a_run_that_decodes_as_diffusers_does(tmp_path, capsys):
    from jgen.run import open_run

    _, err = jgen(capsys, "import-autoencoder", "--weights", str(tmp_path), "--workdir", str(tmp_path / "w"), code=2)
    one_line_error(err, "holds none of diffusion_pytorch_model")
    torch, model = _diffusers_model()
    model.save_pretrained(tmp_path / "vae")
    jgen(capsys, "import-autoencoder", "--weights", str(tmp_path / "vae"), "--workdir", str(tmp_path / "w"),
         "--set", "data.image_size=16")
    _, err = jgen(capsys, "import-autoencoder", "--weights", str(tmp_path / "vae"), "--workdir", str(tmp_path / "w"),
                  code=2)
    one_line_error(err, "already holds a run")
    run = open_run(str(tmp_path / "w"))
    assert run.config.data.channels == 3 and int(run.state.step) == 0
    z = np.random.RandomState(1).randn(2, 8, 8, 4).astype(np.float32)
    with torch.no_grad():
        want = model.decode(torch.from_numpy(z).permute(0, 3, 1, 2)).sample.permute(0, 2, 3, 1).numpy()
    with jax.default_matmul_precision("highest"):
        got = A.decode(run.config, run.variables(), jnp.asarray(z))
    np.testing.assert_allclose(got, np.clip(want, -1, 1), atol=1e-5)
