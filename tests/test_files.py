"""Workdirs at URLs: every file jgen writes itself goes through jgen.files, checkpoints through Orbax."""

import pytest

from helpers import jgen, one_line_error
from jgen.errors import JgenError


def test_url_workdirs_reach_every_writer_and_orbax_unchanged(monkeypatch):
    """tf.io.gfile's in-memory ram:// filesystem stands in for a bucket: config, metrics (appended across
    two writers, as a resumed run does), grids, reports and a damaged checkpoint moved aside all land at
    the URL; a gs:// workdir reaches Orbax as itself, not as <cwd>/gs:/...; an unknown scheme is one line."""
    import json

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from jgen import files
    from jgen.config import load_config, read_config, save_config
    from jgen.eval.evaluate import save_report
    from jgen.images import save_grid
    from jgen.train import checkpoint
    from jgen.train.logging import MetricsWriter

    workdir = "ram://bucket/run"
    config = load_config("ddpm_mnist5k")
    save_config(config, f"{workdir}/config.json")
    assert read_config(f"{workdir}/config.json").to_dict() == config.to_dict()
    for step in (1, 2):
        writer = MetricsWriter(workdir)
        writer.write(step, {"loss": 0.5 / step})
        writer.close()
    rows = [json.loads(line) for line in files.read_text(f"{workdir}/metrics.jsonl").splitlines()]
    assert rows == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    images = np.linspace(-1, 1, 4 * 5 * 5).reshape(4, 5, 5, 1)
    uint8 = save_grid(images, f"{workdir}/samples/final.png")
    with tf.io.gfile.GFile(f"{workdir}/samples/final.png", "rb") as f:
        grid = np.asarray(Image.open(f))
    assert grid.shape == (2 * 5 + 3 * 2,) * 2 and np.array_equal(grid[2:7, 2:7], uint8[0, ..., 0])
    save_report({"step": 2, "fid": 1.5}, f"{workdir}/eval/step_0000002.json")
    assert json.loads(files.read_text(f"{workdir}/eval/step_0000002.json"))["fid"] == 1.5
    files.write_text(f"{workdir}/checkpoints/4/d/part", "array bytes")
    files.move(f"{workdir}/checkpoints/4", f"{workdir}/checkpoints.damaged/4")
    assert files.read_text(f"{workdir}/checkpoints.damaged/4/d/part") == "array bytes"
    assert not files.exists(f"{workdir}/checkpoints/4")

    seen = {}
    monkeypatch.setattr(checkpoint.ocp, "CheckpointManager", lambda directory, **kw: seen.setdefault("dir", directory))
    checkpoint.manager("gs://bucket/run")
    assert seen["dir"] == "gs://bucket/run/checkpoints"
    with pytest.raises(JgenError, match=r"--workdir nope://x/run: no filesystem here writes nope:// URLs"):
        files.check_workdir("nope://x/run")


def test_a_workdir_url_nobody_can_write_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, err = jgen(capsys, "train", "--config", "dcgan_mnist5k", "--workdir", "nope://x/run", code=2)
    one_line_error(err, "no filesystem here writes nope:// URLs")
    assert list(tmp_path.iterdir()) == []
