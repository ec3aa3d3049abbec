"""The evaluator end to end: classifier training, sharded feature extraction, reports, the trainer hook."""

import json
import subprocess
import sys

import numpy as np

from helpers import ROOT, cli_env, free_port, jgen, one_line_error, random_variables, run_jgen, tiny_gan_args
from jgen.data.pipeline import first_images
from jgen.data.sources import open_source
from jgen.eval import evaluate as E
from jgen.eval import metrics
from jgen.eval.classifier import Classifier
from jgen.images import to_uint8
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


def test_classifier_eval_on_8_devices_matches_1_and_the_trainer_logs_it(tmp_path, capsys):
    cls, run, cache = tmp_path / "cls", tmp_path / "run", tmp_path / "cache"
    proc = run_jgen(["train-classifier", "--image-size", "8", "--steps", "60", "--batch-size", "32",
                     "--out", str(cls)], devices=8, check=True)
    meta = json.loads((cls / "classifier.json").read_text())
    assert meta["test_accuracy"] > 0.5 and "test accuracy" in proc.stdout  # 10 classes: chance is 0.1

    # the trainer's hook: every 2 steps, into metrics.jsonl and WORKDIR/eval/
    jgen(capsys, *tiny_gan_args(run, "train.steps=4", "eval.every=2", "eval.num=32", "eval.metrics=fid",
                                f"eval.classifier={cls}", f"eval.cache_dir={cache}"))
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "eval/fid_classifier" in r] == [2, 4]
    assert (run / "eval" / "step_0000004.json").exists()

    proc = run_jgen(["eval", "--workdir", str(run), "--num", "64", "--batch", "32", "--extractor", "classifier",
                     "--classifier", str(cls), "--cache-dir", str(cache)], devices=8, check=True)
    report = json.loads((run / "eval" / "step_0000004.json").read_text())
    assert "FID (classifier features)" in proc.stdout and report["num_reference"] == 64
    assert not {"fid", "kid", "is", "precision", "recall"} & set(report)  # never called FID without Inception

    # the same numbers from one device, recomputed here without the cache
    trained = open_run(str(run))
    mesh = trained.mesh
    extractor = E.classifier_extractor(str(cls), 8, 1)
    fake = E.generate(trained.sampler, 64, batch=32, seed=0)
    real = to_uint8(first_images(open_source("builtin:mnist5k:test"), trained.config.data, 64))
    real_f, _ = E.extract(extractor, real, mesh)
    fake_f, fake_logits = E.extract(extractor, fake, mesh)
    assert abs(report["fid_classifier"] - metrics.fid_from_features(real_f, fake_f)) < 1e-3 * report["fid_classifier"]
    pr = metrics.precision_recall(real_f, fake_f)
    assert abs(report["precision_classifier"] - pr[0]) <= 1 / 64 and abs(report["recall_classifier"] - pr[1]) <= 1 / 64
    assert abs(report["is_classifier"] - metrics.inception_score(fake_logits)[0]) < 1e-3 * report["is_classifier"]

    # two processes (2 CPU devices each) score the same real test digits as one process: each embeds its
    # share of every batch, all hold the gathered features, process 0 alone writes the report
    args = ["eval", "--workdir", str(run), "--num", "96", "--batch", "32", "--extractor", "classifier",
            "--classifier", str(cls), "--real", "test", "--metrics", "fid,kid"]
    jgen(capsys, *args, "--cache-dir", tmp_path / "c1", "--out", tmp_path / "one.json")
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "jgen.cli", *args, "--cache-dir", str(tmp_path / "c2"),
                               "--out", str(tmp_path / "two.json"), "--coordinator", f"localhost:{port}",
                               "--num-processes", "2", "--process-id", str(i)], cwd=ROOT, env=cli_env(2),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][1][-2000:] + outs[1][1][-2000:]
    assert "FID (classifier features)" in outs[0][0] and "FID" not in outs[1][0]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    for key in ("fid_classifier", "kid_classifier"):
        assert abs(one[key] - two[key]) <= 1e-6 * abs(one[key]), (key, one[key], two[key])

    # bad input: one line, exit 2
    _, err = jgen(capsys, "eval", "--workdir", run, "--extractor", "inception", "--inception", tmp_path / "no.npz",
                  code=2)
    one_line_error(err, "convert-inception")
