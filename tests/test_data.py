"""The one input pipeline on every source kind: mock TFDS sets, generated folders, mnist5k."""

import logging
import re
import time

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jgen.data.pipeline import Order, local_batches, preprocess
from jgen.data.sources import mnist5k_arrays, open_source
from jgen.errors import JgenError


def data_config(size, channels, crop=0, flip=False):
    return ml_collections.ConfigDict(dict(image_size=size, channels=channels, crop=crop,
                                          random_flip=flip))


def first(source, cfg, batch=4, seed=0, start=0, n=1):
    it = local_batches(source, cfg, batch, seed, start)
    return [next(it) for _ in range(n)]


def check_batch(b, batch, size, channels):
    assert b["image"].shape == (batch, size, size, channels) and b["image"].dtype == np.uint8
    assert b["label"].shape == (batch,) and b["index"].shape == (batch,)


@pytest.mark.parametrize("name,size,channels,crop", [
    ("mnist", 28, 1, 0), ("cifar10", 32, 3, 0), ("celeb_a", 64, 3, 140), ("mnist", 32, 3, 0)])
def test_tfds_sources_with_mock_data(name, size, channels, crop):
    with tfds.testing.mock_data(num_examples=12):
        source = open_source(f"tfds:{name}:train")
        (b,) = first(source, data_config(size, channels, crop))
    check_batch(b, 4, size, channels)
    assert b["image"].std() > 5  # real pixels, not a constant


def test_missing_tfds_dataset_is_one_clear_error(tmp_path):
    with pytest.raises(JgenError, match=r"not prepared.*tfds build mnist"):
        open_source("tfds:mnist", data_dir=str(tmp_path))
    with pytest.raises(JgenError, match="no dataset named"):
        open_source("tfds:no_such_dataset_xyz")


def test_unknown_source_kind():
    with pytest.raises(JgenError, match="unknown data source"):
        open_source("s3://bucket")


def test_mnist5k_splits():
    tr, tl = mnist5k_arrays("train")
    te, el = mnist5k_arrays("test")
    assert tr.shape == (4500, 28, 28, 1) and te.shape == (500, 28, 28, 1)
    assert np.all(np.bincount(tl) == 450) and np.all(np.bincount(el) == 50)
    assert tr.dtype == np.uint8 and tr.max() == 255


def test_stream_is_a_function_of_seed_and_step():
    source = open_source("builtin:mnist5k:test")
    cfg = data_config(28, 1, flip=True)
    straight = first(source, cfg, batch=32, seed=5, n=40)  # 1,280 images: crosses two epochs of 500
    resumed = first(source, cfg, batch=32, seed=5, start=37, n=3)
    for a, b in zip(straight[37:], resumed):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    other = first(source, cfg, batch=32, seed=6)[0]
    assert not np.array_equal(other["label"], straight[0]["label"])
    # each epoch is a permutation: the first 500 examples hold every digit exactly 50 times
    labels = np.concatenate([b["label"] for b in straight])
    assert np.all(np.bincount(labels[:480], minlength=10) <= 50)


@pytest.mark.parametrize("spec", ["builtin:mnist5k:test", "folder", "tfds:mnist:train"])
def test_processes_feed_the_rows_of_the_one_process_stream(spec, image_folder):
    """Process p's local batch k is rows [p b, (p + 1) b) of one process's global batch k, from any start
    step, flips included: the stream, and so the trajectory, do not depend on the process count."""
    with tfds.testing.mock_data(num_examples=12):
        source = open_source(spec if spec != "folder" else f"folder:{image_folder}")
    cfg = data_config(8, 1, flip=True)
    whole = local_batches(source, cfg, 6, 4, start_step=3)
    parts = [local_batches(source, cfg, 3, 4, 3, process_index=p, process_count=2) for p in (0, 1)]
    for _ in range(4):  # 24 rows: several epochs of the 6-image folder
        one, a, b = next(whole), next(parts[0]), next(parts[1])
        for key in ("image", "label", "index"):
            np.testing.assert_array_equal(np.concatenate([a[key], b[key]]), one[key])


def test_resume_at_step_a_million_costs_what_step_ten_costs():
    """The batch at step 10^6 is the index function's: positions 10^6 b + r, each the record that the
    seeded permutation of epoch p // n puts at p % n; reaching it reads nothing before it."""
    source = open_source("builtin:mnist5k:test")
    cfg, batch = data_config(28, 1), 3
    order = Order(len(source), 7)
    seconds = {}
    for step in (10, 10 ** 6):
        start = time.perf_counter()
        (b,) = first(source, cfg, batch=batch, seed=7, start=step)
        seconds[step] = time.perf_counter() - start
        positions = np.arange(step * batch, (step + 1) * batch)
        np.testing.assert_array_equal(b["index"], positions % 2 ** 31)
        expected = [source[i] for i in order(positions)]
        np.testing.assert_array_equal(b["image"], np.stack([raw for raw, _ in expected]))
        np.testing.assert_array_equal(b["label"], [label for _, label in expected])
    assert seconds[10 ** 6] < seconds[10] + 2.0
    epoch = order(np.arange(10 ** 6 // 500 * 500, 10 ** 6 // 500 * 500 + 500))
    assert sorted(epoch) == list(range(500))  # epoch 2000 is a permutation of the source
    assert not np.array_equal(epoch, order(np.arange(500)))  # and not epoch 0's


@pytest.fixture(scope="module")
def array_record_mnist(tmp_path_factory):
    """TFDS's DummyMnist (20 generated digits), prepared offline as ArrayRecord and as TFRecord."""
    dirs = {}
    for fmt in ("array_record", "tfrecord"):
        dirs[fmt] = str(tmp_path_factory.mktemp(fmt))
        tfds.testing.DummyMnist(data_dir=dirs[fmt], file_format=fmt).download_and_prepare()
    return dirs


def test_tfds_array_record_set_is_read_by_random_access(array_record_mnist):
    source = open_source("tfds:dummy_mnist:train", data_dir=array_record_mnist["array_record"])
    assert len(source) == 20 and source.num_classes == 10
    (b,) = first(source, data_config(28, 1), batch=20)
    check_batch(b, 20, 28, 1)
    raw, _ = source[0]
    assert sorted(b["label"].tolist()) == sorted(source.labels(20).tolist())
    assert isinstance(raw, bytes) and np.all(b["image"] == 1)  # DummyMnist's digits are all-ones PNGs


def test_tfds_set_prepared_as_tfrecord_only_says_how_to_rebuild(array_record_mnist):
    d = array_record_mnist["tfrecord"]
    with pytest.raises(JgenError, match=rf"prepared as tfrecord only.*tfds build dummy_mnist "
                                        rf"--file_format=array_record --data_dir={d}"):
        open_source("tfds:dummy_mnist:train", data_dir=d)


@pytest.fixture
def image_folder(tmp_path):
    """Two classes; PNG and JPEG; grayscale, RGB, RGBA and palette images of odd sizes; one corrupt file."""
    rng = np.random.default_rng(0)
    for cls, n in (("cats", 3), ("dogs", 2)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            arr = rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"rgb{i}.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 20), dtype=np.uint8)).save(tmp_path / "cats" / "gray.png")
    Image.fromarray(rng.integers(0, 256, (33, 33, 4), dtype=np.uint8), "RGBA").save(tmp_path / "dogs" / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).convert("P").save(tmp_path / "dogs" / "pal.png")
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


def test_folder_source_skips_corrupt_and_labels_by_subfolder(image_folder, caplog):
    with caplog.at_level(logging.WARNING):
        source = open_source(f"folder:{image_folder}")
    assert "skipped 1 unreadable" in caplog.text
    assert len(source) == 8 and source.num_classes == 2
    for channels in (1, 3):
        (b,) = first(source, data_config(16, channels), batch=8)
        check_batch(b, 8, 16, channels)
        assert sorted(b["label"].tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]


def test_folder_with_nothing_readable(tmp_path):
    (tmp_path / "a.png").write_bytes(b"garbage")
    with pytest.raises(JgenError, match="no readable images"):
        open_source(f"folder:{tmp_path}")
    with pytest.raises(JgenError, match="not found"):
        open_source(f"folder:{tmp_path / 'missing'}")


def test_preprocess_centre_crop_resize_and_scale():
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, 10:50] = 255  # the centre 40x40 square is white, the side bands black
    out = preprocess(image, 8, 3)
    assert out.dtype == np.uint8 and np.all(out == 255)
    gray = preprocess(np.full((8, 8, 3), (255, 0, 0), np.uint8), 8, 1)
    np.testing.assert_array_equal(gray, round(0.2989 * 255))  # ITU-R 601 luma of red


def test_prefetched_keeps_order_and_raises_the_producers_error():
    from jgen.data.pipeline import prefetched

    assert list(prefetched(iter(range(7)), size=2)) == list(range(7))

    def failing():
        yield 1
        raise JgenError("corrupt record 2")

    it = prefetched(failing())
    assert next(it) == 1
    with pytest.raises(JgenError, match="corrupt record 2"):
        next(it)


def test_device_stage_normalises_and_flips_as_a_function_of_seed_and_position():
    """uint8 -> [-1, 1] exactly; each example flipped or not by (seed, stream position) alone: the same
    positions in another batch order give the same flips, and about half of them flip."""
    import jax.numpy as jnp

    from jgen.data.device import model_inputs

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 5, 6, 1)).astype(np.uint8)
    index = np.arange(1000, 1064, dtype=np.int32)
    out = np.asarray(model_inputs({"image": jnp.asarray(images), "index": jnp.asarray(index)},
                                  data_config(5, 1, flip=True), seed=3)["image"])
    plain = images.astype(np.float64) / 127.5 - 1
    flipped = np.array([np.allclose(o, p[:, ::-1], atol=1e-6) and not np.allclose(o, p, atol=1e-6)
                        for o, p in zip(out, plain)])
    kept = np.array([np.allclose(o, p, atol=1e-6) for o, p in zip(out, plain)])
    assert np.all(flipped | kept) and 16 < flipped.sum() < 48
    perm = rng.permutation(64)
    again = np.asarray(model_inputs({"image": jnp.asarray(images[perm]), "index": jnp.asarray(index[perm])},
                                    data_config(5, 1, flip=True), seed=3)["image"])
    np.testing.assert_array_equal(again, out[perm])
    same = model_inputs({"image": jnp.asarray(plain, jnp.float32)}, data_config(5, 1, flip=True), seed=3)
    np.testing.assert_array_equal(np.asarray(same["image"]), plain.astype(np.float32))  # float: untouched


def test_cached_source_gives_the_same_stream_and_refuses_what_would_not_fit(image_folder):
    from jgen.data.pipeline import cache_refusal, cached

    source, cfg = open_source(f"folder:{image_folder}"), data_config(12, 3, crop=30)
    kept = cached(source, cfg)
    assert kept.ready and len(kept) == len(source)
    for a, b in zip(first(source, cfg, batch=5, seed=2, start=3, n=3), first(kept, cfg, batch=5, seed=2, start=3, n=3)):
        for key in ("image", "label", "index"):
            np.testing.assert_array_equal(a[key], b[key])
    assert cache_refusal(source, cfg) == ""
    assert re.search(r"data.cache=true would hold .* GiB .* set data.cache=false",
                     cache_refusal(source, data_config(10 ** 6, 3)))  # 8 images of 10^6 x 10^6 pixels


def test_sixteen_bit_png_keeps_its_top_eight_bits(tmp_path):
    values = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    Image.fromarray(values).save(tmp_path / "deep.png")  # uint16: a 16-bit greyscale PNG
    out = preprocess(str(tmp_path / "deep.png"), 8, 1)
    np.testing.assert_array_equal(out[..., 0], values >> 8)
