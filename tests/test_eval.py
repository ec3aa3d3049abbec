"""The evaluator end to end: classifier training, sharded feature extraction, reports, the trainer hook."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, free_port, jgen, multiprocess_env, one_line_error, random_variables, run_jgen, tiny_gan_args
from jgen.data.pipeline import images_at, uniform_subset
from jgen.data.sources import open_source
from jgen.eval import evaluate as E
from jgen.eval import metrics
from jgen.eval.classifier import Classifier
from jgen.run import open_run
from jgen.sharding import make_mesh


def test_extract_pads_the_last_batch_and_equals_one_call():
    model = Classifier(10)
    x = np.zeros((1, 8, 8, 1), np.float32)
    params = random_variables(model, np.random.default_rng(0), x)["params"]
    images = np.random.default_rng(1).integers(0, 256, size=(37, 8, 8, 1), dtype=np.uint8)
    extractor = E.Extractor("classifier", "test", lambda p, v: model.apply({"params": p}, v), params, batch=16)
    features, logits = E.extract(extractor, images, make_mesh())
    direct = model.apply({"params": params}, images.astype(np.float32) / 127.5 - 1)
    np.testing.assert_allclose(features, direct["features"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, direct["logits"], rtol=1e-5, atol=1e-6)


# CI scores on one device; 8 devices and two processes (the same numbers) are a long check
@pytest.mark.parametrize("devices", [1, pytest.param(8, marks=pytest.mark.long)])
def test_classifier_eval_matches_a_recomputation_and_the_trainer_logs_it(tmp_path, capsys, devices):
    """`jgen train-classifier`, the trainer's eval.every hook and `jgen eval` on `devices` devices; the
    report against FID, precision/recall and IS recomputed here on one device from the same images."""
    cls, run, cache = tmp_path / "cls", tmp_path / "run", tmp_path / "cache"
    proc = run_jgen(["train-classifier", "--image-size", "8", "--steps", "60", "--batch-size", "32",
                     "--out", str(cls)], devices=devices, check=True)
    meta = json.loads((cls / "classifier.json").read_text())
    assert meta["test_accuracy"] > 0.5 and "test accuracy" in proc.stdout  # 10 classes: chance is 0.1

    # the trainer's hook: every 2 steps, into metrics.jsonl and WORKDIR/eval/
    jgen(capsys, *tiny_gan_args(run, "train.steps=4", "eval.every=2", "eval.num=32", "eval.metrics=fid",
                                f"eval.classifier={cls}", f"eval.cache_dir={cache}"))
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "eval/fid_classifier" in r] == [2, 4]
    assert (run / "eval" / "step_0000004.json").exists()

    proc = run_jgen(["eval", "--workdir", str(run), "--num", "64", "--batch", "32", "--extractor", "classifier",
                     "--classifier", str(cls), "--cache-dir", str(cache)], devices=devices, check=True)
    report = json.loads((run / "eval" / "step_0000004.json").read_text())
    assert "FID (classifier features)" in proc.stdout and report["num_reference"] == 64
    assert not {"fid", "kid", "is", "precision", "recall"} & set(report)  # never called FID without Inception

    # the same numbers from one device, recomputed here without the cache
    trained = open_run(str(run))
    mesh = trained.mesh
    extractor = E.classifier_extractor(str(cls), 8, 1)
    fake = E.generate(trained.sampler, 64, batch=32, seed=0)
    real = E.subset_images(trained.config.data, "builtin:mnist5k:test", 64, E.REFERENCE_SEED)
    real_f, _ = E.extract(extractor, real, mesh)
    fake_f, fake_logits = E.extract(extractor, fake, mesh)
    assert abs(report["fid_classifier"] - metrics.fid_from_features(real_f, fake_f)) < 1e-3 * report["fid_classifier"]
    pr = metrics.precision_recall(real_f, fake_f)
    assert abs(report["precision_classifier"] - pr[0]) <= 1 / 64 and abs(report["recall_classifier"] - pr[1]) <= 1 / 64
    assert abs(report["is_classifier"] - metrics.inception_score(fake_logits)[0]) < 1e-3 * report["is_classifier"]

    # bad input: one line, exit 2
    _, err = jgen(capsys, "eval", "--workdir", run, "--extractor", "inception", "--inception", tmp_path / "no.npz",
                  code=2)
    one_line_error(err, "convert-inception")
    if devices == 1:
        return
    # two processes (2 CPU devices each) score the same real test digits as one process: each embeds its
    # share of every batch, all hold the gathered features, process 0 alone writes the report
    args = ["eval", "--workdir", str(run), "--num", "96", "--batch", "32", "--extractor", "classifier",
            "--classifier", str(cls), "--real", "test", "--metrics", "fid,kid"]
    jgen(capsys, *args, "--cache-dir", tmp_path / "c1", "--out", tmp_path / "one.json")
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "jgen.cli", *args, "--cache-dir", str(tmp_path / "c2"),
                               "--out", str(tmp_path / "two.json"), "--coordinator", f"localhost:{port}",
                               "--num-processes", "2", "--process-id", str(i)], cwd=ROOT, env=multiprocess_env(2),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][1][-2000:] + outs[1][1][-2000:]
    assert "FID (classifier features)" in outs[0][0] and "FID" not in outs[1][0]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    for key in ("fid_classifier", "kid_classifier"):
        assert abs(one[key] - two[key]) <= 1e-6 * abs(one[key]), (key, one[key], two[key])


def test_uniform_subsets_represent_a_class_sorted_split():
    """mnist5k's train split is sorted by class (its first 1,000 digits are 0s, 1s and a few 2s). A uniform
    subset of 1,000 holds every class within 20% of 100; two disjoint uniform subsets are far closer in
    FID (on 7x7-pooled pixels) than the first 1,000 digits are to either."""
    import ml_collections

    source = open_source("builtin:mnist5k:train")
    data = ml_collections.ConfigDict(dict(image_size=28, channels=1, crop=0, random_flip=False))
    a = uniform_subset(source, 1000, seed=0)
    b = np.setdiff1d(uniform_subset(source, 2000, seed=0), a)  # positions 1,000-1,999 of the same permutation
    assert len(a) == len(b) == 1000 and not np.intersect1d(a, b).size
    np.testing.assert_array_equal(a, uniform_subset(source, 1000, seed=0))  # same seed, same subset
    labels = np.array([source[i][1] for i in a])
    assert np.all(np.abs(np.bincount(labels, minlength=10) - 100) <= 20), np.bincount(labels)
    assert np.bincount([source[i][1] for i in range(1000)], minlength=10)[3:].sum() == 0  # the first-N subset

    def pooled(indices):  # [n, 49] float64: 4x4 block means of the 28x28 digits
        x = images_at(source, data, indices).astype(np.float64)[..., 0]
        return x.reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(len(x), 49)

    ref = pooled(a)
    uniform_fid, first_fid = metrics.fid_from_features(ref, pooled(b)), metrics.fid_from_features(ref, pooled(range(1000)))
    assert uniform_fid * 10 < first_fid, (uniform_fid, first_fid)
