"""Shared test helpers: tiny overrides of the real recipes, in-process and subprocess `jgen` runs,
reading a run back, and float64 references."""

import hashlib
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jgen.cli import main
from jgen.diffusion import process as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
STRAIGHT = ["train.steps=6", "train.ckpt_every=2", "train.keep_checkpoints=5"]
# The straight run's network (conftest.straight_run) and the runs replayed against it: the DDPM recipe on a
# one-block DiT, the network quickest to compile, so the fault, resume and multi-process tests spend their
# time on the trainer they test rather than on XLA (measured: the flow CLI test took 58 s on it, 156 s on TINY).
# TINY_DIT: a DiT recipe shrunk (8x8 digits, 2x2 patches, one block of width 16)
TINY_DIT = ["data.image_size=8", "model.patch_size=2", "model.hidden=16", "model.depth=1", "model.heads=2",
            "train.batch_size=16", "train.log_every=1", "train.sample_every=0", "sample.steps=2", "sample.num=8",
            "optim.warmup_steps=2"]
TINY_STRAIGHT = ["model.arch=dit", *TINY_DIT]


def cli_env(devices: int = 1) -> dict:
    """The environment of a `jgen` subprocess with `devices` fake CPU devices, this process's other XLA
    flags (conftest.py's) and a shared compile cache."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
    env = dict(os.environ, XLA_FLAGS=" ".join([f"--xla_force_host_platform_device_count={devices}", *flags]),
               JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    env.setdefault("JGEN_COMPILE_CACHE", os.path.join(ROOT, ".pytest_cache", "xla"))
    return env


def multiprocess_env(devices: int) -> dict:
    """cli_env(devices) for each process of a multi-process run, without the persistent compile cache.

    Gloo sets up each device group at its first collective with a 30 s limit on the other processes
    arriving; past it one process fails and the other hangs. JAX keys a multi-process executable per
    process and only process 0 writes it, so with a warm cache process 0 loaded the steps that
    process 1 still had to compile and waited for it there, over 30 s on a loaded 2-core machine."""
    return dict(cli_env(devices), JGEN_COMPILE_CACHE="")


def run_jgen(args, devices: int = 1, timeout: int = 300, check: bool = False, **popen):
    """Runs `python -m jgen.cli ARGS` in a subprocess with `devices` fake CPU devices: for what needs a
    process boundary (another device count, signals, several processes)."""
    proc = subprocess.run([sys.executable, "-m", "jgen.cli", *args], env=cli_env(devices), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f"jgen {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def jgen(capsys, *args, code: int = 0):
    """`jgen ARGS` in this process: (stdout, stderr); asserts the exit code."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert rc == code, err[-3000:]
    return out, err


def one_line_error(err: str, pattern: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("jgen: error:") and pattern in lines[-1], lines[-3:]


def spawn(args, env):
    return subprocess.Popen([sys.executable, "-m", "jgen.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# `jgen ARGS` as a subprocess that, after step HOLD of a fresh run (the n-th step call is step n), waits
# until the file RELEASE exists (at most 120 s): the test signals it, caps its files, ... while it is held at
# a known step. (A slow 1000-step DDPM grid held such runs before: seconds of compile and sampling for a wait.)
HOLD_DRIVER = """
import os, sys, time
from jgen import host
host.configure()
import jgen.run as run
from jgen.cli import main

hold, release = int(sys.argv[1]), sys.argv[2]
make = run.jit_train_step
def held(*args, **kwargs):
    step_fn, done = make(*args, **kwargs), [0]
    def step(state, batch):
        out = step_fn(state, batch)
        done[0] += 1
        if done[0] == hold:
            end = time.time() + 120
            while not os.path.exists(release) and time.time() < end:
                time.sleep(0.02)
        return out
    return step
run.jit_train_step = held
sys.exit(main(sys.argv[3:]))
"""


def spawn_held(args, env, hold, release):
    """spawn(args, env), held after step `hold` until release(`release`) (see HOLD_DRIVER)."""
    return subprocess.Popen([sys.executable, "-c", HOLD_DRIVER, str(hold), str(release), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def release(path) -> None:
    open(path, "w").close()


def wait_for_checkpoint(proc, workdir, step, timeout=240):
    target = os.path.join(workdir, "checkpoints", str(step), "_CHECKPOINT_METADATA")
    end = time.time() + timeout
    while not os.path.exists(target):
        assert proc.poll() is None, f"run ended before checkpoint {step}:\n{proc.stderr.read()[-3000:]}"
        assert time.time() < end, "timed out waiting for a checkpoint"
        time.sleep(0.05)


def tiny_train_args(workdir, *extra, config=MNIST_CONFIG, tiny=TINY):
    args = ["train", "--config", config, "--workdir", str(workdir)]
    for item in list(tiny) + list(extra):
        args += ["--set", item]
    return args


def straight_args(workdir, *extra):
    """tiny_train_args of the straight run's config (TINY_STRAIGHT)."""
    return tiny_train_args(workdir, *extra, tiny=TINY_STRAIGHT)


def tiny_gan_args(workdir, *extra):
    return tiny_train_args(workdir, *extra, config=GAN_CONFIG, tiny=TINY_GAN)


def tiny_vae_args(workdir, *extra):
    return tiny_train_args(workdir, *extra, config=VAE_CONFIG, tiny=TINY_VAE)


def final_state(workdir):
    from jgen.run import open_run

    return open_run(str(workdir)).state


_TARGETS = {}  # config.json's text -> the one-device restore target (tracing init's shapes takes ~1 s)


def state_at(workdir, step):
    """The TrainState of checkpoint `step` of a workdir, on one device."""
    from jgen.config import read_config
    from jgen.families import get_family
    from jgen.train import checkpoint
    from jgen.train.step import state_shapes

    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        text = f.read()
    if text not in _TARGETS:
        config = read_config(path)
        shapes = state_shapes(get_family(config.family), config)
        one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        _TARGETS[text] = checkpoint.abstract_like(shapes, jax.tree.map(lambda _: one, shapes))
    return checkpoint.restore(checkpoint.manager(str(workdir), create=False), _TARGETS[text], step)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def all_leaves(state):
    return leaves(state.params) + leaves(state.ema_params) + leaves(state.opt_state) + leaves(state.model_state)


def assert_same(a, b, tol=0.0):
    assert int(a.step) == int(b.step)
    for x, y in zip(all_leaves(a), all_leaves(b), strict=True):
        if tol:
            assert np.max(np.abs(x - y)) < tol
        else:
            np.testing.assert_array_equal(x, y)


def tree_digest(path):
    h = hashlib.sha256()
    for d, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            h.update(f.encode())
            h.update(open(os.path.join(d, f), "rb").read())
    return h.hexdigest()


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


def gaussian_model(sched, mu, s):
    """Exact eps-prediction for data ~ N(mu, s^2): E[eps | x_t] in closed form."""
    def model_fn(x, t):
        a = sched.alphas_cumprod[t][:, None, None, None]
        eps = (x - jnp.sqrt(a) * mu) * jnp.sqrt(1 - a) / (a * s ** 2 + 1 - a)
        return P.to_x0_eps(sched, "eps", x, t, eps)[0], eps
    return model_fn


def free_port() -> int:
    """A TCP port free now on localhost: a coordinator address for a multi-process test."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]
