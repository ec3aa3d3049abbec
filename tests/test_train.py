"""The trainer end to end through the CLI: sharding, exact resume, sampling, and bad input."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_jgen, tiny_train_args
from jgen.train.loop import restore_run
from jgen.train.parallel import make_mesh


def final_state(workdir):
    return restore_run(str(workdir), make_mesh())[1]


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _spawn(args, env):
    return subprocess.Popen([sys.executable, "-m", "jgen.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc, workdir, step, timeout=240):
    target = os.path.join(workdir, "checkpoints", str(step), "_CHECKPOINT_METADATA")
    end = time.time() + timeout
    while not os.path.exists(target):
        assert proc.poll() is None, f"run ended before checkpoint {step}:\n{proc.stderr.read()[-3000:]}"
        assert time.time() < end, "timed out waiting for a checkpoint"
        time.sleep(0.05)


# kill -9 of the same loop is covered for the GAN family in test_family_train.py
@pytest.mark.parametrize("how", [signal.SIGTERM])
def test_resume_after_interruption_is_bit_exact(tmp_path, jgen_env, how, straight_run):
    """6 steps straight == 3 steps, interrupted (kill -9, or SIGTERM), resumed for 3 more."""
    # A slow 1000-step DDPM grid after step 4 keeps the run busy while it is interrupted.
    args = tiny_train_args(tmp_path / "cut", "train.steps=6", "train.ckpt_every=3", "train.sample_every=4",
                           "sample.sampler=ddpm", "sample.num=64")
    proc = _spawn(args, jgen_env)
    _wait_for_checkpoint(proc, str(tmp_path / "cut"), 3)
    proc.send_signal(how)
    proc.wait(timeout=240)
    if how == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 0 and "stop requested" in proc.stdout.read()
    interrupted_at = int(final_state(tmp_path / "cut").step)
    assert 3 <= interrupted_at < 6
    resumed = run_jgen(args, check=True)
    assert f"resumed {tmp_path / 'cut'} at step {interrupted_at}" in resumed.stdout
    a, b = final_state(straight_run), final_state(tmp_path / "cut")
    assert int(a.step) == int(b.step) == 6
    for x, y in zip(leaves(a.params) + leaves(a.ema_params) + leaves(a.opt_state),
                    leaves(b.params) + leaves(b.ema_params) + leaves(b.opt_state)):
        np.testing.assert_array_equal(x, y)


def test_sample_cli_writes_grid_and_npz(tmp_path):
    run_jgen(tiny_train_args(tmp_path / "run", "train.steps=2"), check=True)
    assert Image.open(tmp_path / "run" / "samples" / "final.png").size == (3 * 10 + 2,) * 2  # 8 images, 3x3
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 2
    assert any(f.startswith("events") for f in os.listdir(tmp_path / "run" / "tb"))
    out = tmp_path / "s.png"
    proc = run_jgen(["sample", "--workdir", str(tmp_path / "run"), "--num", "4", "--steps", "3",
                     "--out", str(out)], check=True)
    assert "4 samples from step 2" in proc.stdout
    images = np.load(tmp_path / "s.npz")["images"]
    assert images.shape == (4, 8, 8, 1) and images.dtype == np.uint8
    assert Image.open(out).size == (2 * 10 + 2,) * 2


def _one_line_error(proc, pattern):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("jgen: error:") and pattern in lines[-1], lines[-3:]


def _tree_digest(path):
    h = hashlib.sha256()
    for d, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            h.update(f.encode())
            h.update(open(os.path.join(d, f), "rb").read())
    return h.hexdigest()


def test_bad_input_gives_one_line_errors_and_overwrites_nothing(tmp_path):
    proc = run_jgen(tiny_train_args(tmp_path / "w1", "train.stepz=3"))
    _one_line_error(proc, "unknown config key 'train.stepz'")
    assert not (tmp_path / "w1").exists()

    proc = run_jgen(tiny_train_args(tmp_path / "w2", "data.source=tfds:mnist", f"data.data_dir={tmp_path}/none"))
    _one_line_error(proc, "tfds build mnist")
    assert not (tmp_path / "w2").exists()

    proc = run_jgen(["sample", "--workdir", str(tmp_path / "nothing")])
    _one_line_error(proc, "not a jgen run directory")

    run_jgen(tiny_train_args(tmp_path / "w3", "train.steps=1"), check=True)
    (tmp_path / "w3" / "checkpoints" / "1" / "default" / "_METADATA").write_text("{ not json")
    before = _tree_digest(tmp_path / "w3")
    _one_line_error(run_jgen(tiny_train_args(tmp_path / "w3", "train.steps=2")), "cannot be restored")
    _one_line_error(run_jgen(["sample", "--workdir", str(tmp_path / "w3")]), "cannot be restored")
    assert _tree_digest(tmp_path / "w3") == before

    os.remove(tmp_path / "w3" / "config.json")
    run_jgen(tiny_train_args(tmp_path / "w4", "train.steps=1"), check=True)
    proc = run_jgen(tiny_train_args(tmp_path / "w4", "train.steps=2", "model.ch=16"))
    _one_line_error(proc, "different model")
