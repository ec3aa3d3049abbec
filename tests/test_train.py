"""The trainer end to end: exact resume after a signal, the outputs a run leaves, and bad input that
must end in one line, exit 2, with nothing written or changed."""

import os
import signal

import pytest
from PIL import Image

from helpers import (assert_same, final_state, jgen, one_line_error, release, spawn_held, straight_args, tiny_train_args,
                     tree_digest, wait_for_checkpoint)
import numpy as np


# kill -9 of the same loop is covered for the GAN family in test_family_train.py; in CI, SIGTERM by the
# two-process test of test_faults.py (to 1e-5): this one-process, bit-exact case is a long check
@pytest.mark.long
@pytest.mark.parametrize("how", [signal.SIGTERM])
def test_resume_after_interruption_is_bit_exact(tmp_path, capsys, jgen_env, how, straight_run):
    """6 steps straight == 3 steps, interrupted (kill -9, or SIGTERM), resumed for 3 more."""
    args = straight_args(tmp_path / "cut", "train.steps=6", "train.ckpt_every=3")
    proc = spawn_held(args, jgen_env, 4, tmp_path / "sent")  # the run waits after step 4 while it is interrupted
    wait_for_checkpoint(proc, str(tmp_path / "cut"), 3)
    proc.send_signal(how)
    release(tmp_path / "sent")
    proc.wait(timeout=240)
    if how == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 0 and "stop requested" in proc.stdout.read()
    interrupted_at = int(final_state(tmp_path / "cut").step)
    assert 3 <= interrupted_at < 6
    out, _ = jgen(capsys, *args)
    assert f"resumed {tmp_path / 'cut'} at step {interrupted_at}" in out
    assert_same(final_state(straight_run), final_state(tmp_path / "cut"))


def test_sample_writes_grid_and_npz(tmp_path, capsys):
    jgen(capsys, *straight_args(tmp_path / "run", "train.steps=2"))  # the grid and npz writers, on the quick network
    assert Image.open(tmp_path / "run" / "samples" / "final.png").size == (3 * 10 + 2,) * 2  # 8 images, 3x3
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 2
    assert any(f.startswith("events") for f in os.listdir(tmp_path / "run" / "tb"))
    out = tmp_path / "s.png"
    stdout, _ = jgen(capsys, "sample", "--workdir", tmp_path / "run", "--num", 4, "--steps", 3, "--out", out)
    assert "4 samples from step 2" in stdout
    images = np.load(tmp_path / "s.npz")["images"]
    assert images.shape == (4, 8, 8, 1) and images.dtype == np.uint8
    assert Image.open(out).size == (2 * 10 + 2,) * 2


def test_bad_input_gives_one_line_errors_and_overwrites_nothing(tmp_path, capsys):
    _, err = jgen(capsys, *tiny_train_args(tmp_path / "w1", "train.stepz=3"), code=2)
    one_line_error(err, "unknown config key 'train.stepz'")
    assert not (tmp_path / "w1").exists()

    _, err = jgen(capsys, *tiny_train_args(tmp_path / "w2", "data.source=tfds:mnist",
                                          f"data.data_dir={tmp_path}/none"), code=2)
    one_line_error(err, "tfds build mnist")
    assert not (tmp_path / "w2").exists()

    one_line_error(jgen(capsys, "sample", "--workdir", tmp_path / "nothing", code=2)[1], "not a jgen run directory")

    jgen(capsys, *tiny_train_args(tmp_path / "w3", "train.steps=1"))
    (tmp_path / "w3" / "checkpoints" / "1" / "default" / "_METADATA").write_text("{ not json")
    before = tree_digest(tmp_path / "w3")
    one_line_error(jgen(capsys, *tiny_train_args(tmp_path / "w3", "train.steps=2"), code=2)[1], "cannot be restored")
    one_line_error(jgen(capsys, "sample", "--workdir", tmp_path / "w3", code=2)[1], "cannot be restored")
    assert tree_digest(tmp_path / "w3") == before


# CI keeps the case that adds a parameter; a changed optimiser state or width are long checks (same code path)
@pytest.mark.parametrize("change,path", [pytest.param("optim.grad_clip=0", "opt_state.", marks=pytest.mark.long),
                                         ("condition.kind=class", "params.label_embed"),
                                         pytest.param("model.ch=16", "params.", marks=pytest.mark.long)])
def test_a_config_that_changes_the_state_cannot_resume_and_touches_nothing(tmp_path, capsys, change, path):
    """The tree jax.eval_shape(init) builds is compared with the checkpoint's: the first differing
    array and the changed config keys are named, exit 2, the workdir stays byte for byte."""
    workdir = tmp_path / "run"
    jgen(capsys, *tiny_train_args(workdir, "train.steps=2", "train.ckpt_every=1"))
    before = tree_digest(workdir)
    _, err = jgen(capsys, *tiny_train_args(workdir, "train.steps=4", change), code=2)
    one_line_error(err, "holds a run of a different model")
    assert path in err.splitlines()[-1] and change.split("=")[0] in err.splitlines()[-1]
    assert "new --workdir" in err.splitlines()[-1]
    assert tree_digest(workdir) == before
