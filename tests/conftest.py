"""Shared helpers: tiny overrides of the real configs, and running the `jgen` CLI in a subprocess."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # benchmarks.twins: the PyTorch twins the parity tests compare against
MNIST_CONFIG = os.path.join(ROOT, "configs", "ddpm_mnist5k.py")
GAN_CONFIG = os.path.join(ROOT, "configs", "dcgan_mnist5k.py")
VAE_CONFIG = os.path.join(ROOT, "configs", "betavae_mnist5k.py")

# The offline default recipe shrunk to seconds: 8x8 digits, a two-level U-Net, a 2-step DDIM grid.
TINY = ["data.image_size=8", "model.ch=8", "model.ch_mult=(1,2)", "model.attn_resolutions=(4,)",
        "model.num_groups=4", "model.dropout=0.1", "train.batch_size=16", "train.log_every=1",
        "train.sample_every=0", "sample.steps=2", "sample.num=8", "optim.warmup_steps=2"]


# The offline DCGAN shrunk the same way: 8x8 digits (4x4 -> 8x8), 8-channel networks.
TINY_GAN = ["data.image_size=8", "model.ngf=8", "model.ndf=8", "model.latent_dim=8", "train.batch_size=16",
            "train.log_every=1", "train.sample_every=0", "sample.num=8"]


# The offline beta-VAE shrunk: 8x8 digits (one 64-channel convolution to 4x4), 4 latents.
TINY_VAE = ["data.image_size=8", "model.latent_dim=4", "train.batch_size=16", "train.log_every=1",
            "train.sample_every=0", "sample.num=8"]


def cli_env(devices: int = 1) -> dict:
    """The environment of a `jgen` subprocess with `devices` fake CPU devices and a shared compile cache."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    env.setdefault("JGEN_COMPILE_CACHE", os.path.join(ROOT, ".pytest_cache", "xla"))
    return env


def run_jgen(args, devices: int = 1, timeout: int = 300, check: bool = False, **popen):
    """Runs `python -m jgen.cli ARGS` with `devices` fake CPU devices; returns CompletedProcess."""
    env = cli_env(devices)
    proc = subprocess.run([sys.executable, "-m", "jgen.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f"jgen {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def tiny_train_args(workdir, *extra, config=MNIST_CONFIG, tiny=TINY):
    args = ["train", "--config", config, "--workdir", str(workdir)]
    for item in list(tiny) + list(extra):
        args += ["--set", item]
    return args


def tiny_gan_args(workdir, *extra):
    return tiny_train_args(workdir, *extra, config=GAN_CONFIG, tiny=TINY_GAN)


def tiny_vae_args(workdir, *extra):
    return tiny_train_args(workdir, *extra, config=VAE_CONFIG, tiny=TINY_VAE)


@pytest.fixture
def jgen_env():
    return cli_env(1)


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory):
    """The tiny DDPM trained 6 steps on one device without interruption, checkpoints at 2, 4 and 6:
    the trajectory that interrupted, damaged and re-sharded runs must reproduce."""
    workdir = tmp_path_factory.mktemp("straight") / "run"
    run_jgen(tiny_train_args(workdir, *STRAIGHT), check=True)
    return workdir


STRAIGHT = ["train.steps=6", "train.ckpt_every=2", "train.keep_checkpoints=5"]


def rel_err(a, b):
    """max |a - b| / max |b|, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


def random_variables(module, rng, *inputs, **kwargs):
    """Random params N(0, 0.1) (BatchNorm scales and running statistics U(0.5, 1.5)) in the module's layout.

    Drawn with NumPy into the shapes of `eval_shape(init)`: jitting Flax's init compiles one threefry
    kernel per parameter, seconds on 2 cores, and a parity test only needs some weights.
    """
    shapes = jax.eval_shape(lambda k, *a: module.init(k, *a, **kwargs), jax.random.PRNGKey(0), *inputs)

    def draw(path, s):
        name = jax.tree_util.keystr(path)
        positive = "batch_stats" in name or "scale" in name
        return jnp.float32(rng.uniform(0.5, 1.5, s.shape) if positive else 0.1 * rng.normal(size=s.shape))

    return jax.tree_util.tree_map_with_path(draw, shapes)
