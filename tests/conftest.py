"""Fixtures. The CPU host settings the `jgen` command applies (jgen.host) are applied here too, before
any backend starts, so in-process runs compute exactly what `jgen` subprocesses compute."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from jgen import host  # noqa: E402

host.configure()

import pytest  # noqa: E402

from helpers import STRAIGHT, cli_env, tiny_train_args  # noqa: E402
from jgen.cli import main  # noqa: E402


@pytest.fixture
def jgen_env():
    return cli_env(1)


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory):
    """The tiny DDPM trained 6 steps on one device without interruption, checkpoints at 2, 4 and 6:
    the trajectory that interrupted, damaged and re-sharded runs must reproduce."""
    workdir = tmp_path_factory.mktemp("straight") / "run"
    assert main([str(a) for a in tiny_train_args(workdir, *STRAIGHT)]) == 0  # in this process: no boundary
    return workdir
