"""The one input pipeline: source -> global shuffled order -> this process's rows -> decode/preprocess ->
uint8 batch -> global array.

The stream is a pure function of (seed, position): position p holds the record that the seeded
permutation of epoch p // len(source) puts at p % len(source) (`Order`), computed without visiting
anything before it. `local_batches(..., start_step=k)` therefore costs the same at step 10 as at step
10^6 and yields exactly what the uninterrupted stream yields from its k-th batch on; the checkpoint's
step is the whole iterator state. Batches cross to the device as uint8 with each example's stream position;
jgen.data.device normalises and flips them there, the flip a function of (seed, position).

Grain runs the batches in reader threads ahead of the consumer (PIL releases the GIL while it decodes
and resizes); no TensorFlow is involved.
"""

import functools
import io
import os
import queue
import threading

import grain
import jax
import numpy as np
from PIL import Image

from jgen.data.sources import Source
from jgen.images import from_uint8
from jgen.sharding import batch_sharding

READ_THREADS = min(8, os.cpu_count() or 1)  # batches made at once; PIL decodes and resizes without the GIL
END = 2 ** 62  # the stream's length: endless in practice, finite for Grain's range


def _image(raw) -> Image.Image:
    """A source's raw image (uint8 [H, W, C] array, PIL image, encoded bytes or path) as a lazy PIL image."""
    if isinstance(raw, Image.Image):
        return raw
    if isinstance(raw, np.ndarray):
        return Image.fromarray(raw[..., 0] if raw.shape[-1] == 1 else raw)
    return Image.open(io.BytesIO(raw) if isinstance(raw, bytes) else raw)


def preprocess(raw, size: int, channels: int, crop: int = 0) -> np.ndarray:
    """A raw image -> uint8 [size, size, channels].

    Centre-crops a square of side `crop` (0: the shorter side; larger than the image: the shorter
    side) and resizes it with PIL's antialiased bilinear filter; images already of that size are not
    resized. Colour becomes luma by ITU-R 601 (1 channel) or is replicated (3); alpha is dropped. A JPEG
    at least twice the target after cropping is decoded at 1/2, 1/4 or 1/8 scale (DCT scaling, never
    below the target): most of a 178 -> 64 CelebA resize happens inside the decoder, at a fraction of
    the cost.
    """
    image = _image(raw)
    w, h = image.size
    side = min(w, h) if crop <= 0 else min(w, h, crop)
    if image.format == "JPEG" and side >= 2 * size:
        image.draft(image.mode, (-(-w * size // side), -(-h * size // side)))
        side = min(image.size[0] * side // w, *image.size)
        w, h = image.size
    if image.mode == "I" or image.mode.startswith("I;16"):  # 16-bit PNG: keep the top 8 bits (convert() clips)
        image = Image.fromarray(np.clip(np.asarray(image).astype(np.int64) >> 8, 0, 255).astype(np.uint8))
    image = image.convert("L" if channels == 1 else "RGB")
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, np.uint8).reshape(size, size, channels)


def _examples(source: Source, indices, positions, data) -> dict:
    """{'image': uint8 [n, S, S, C], 'label': int32 [n], 'index': int32 [n] (the stream positions)} for the
    source's records at `indices` (a cached source's records are preprocessed already)."""
    raws, labels = zip(*(source[i] for i in indices))
    images = raws if source.ready else [preprocess(raw, data.image_size, data.channels, data.crop) for raw in raws]
    return {"image": np.stack(images), "label": np.asarray(labels, np.int32),
            "index": (np.asarray(positions, np.int64) % 2 ** 31).astype(np.int32)}


def _read_ahead(blocks, threads: int = READ_THREADS):
    """A Grain MapDataset of example blocks, made by `threads` reader threads ahead of the consumer (0: made
    on the consumer's thread when asked for), in order."""
    return blocks.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads))


class Order:
    """Stream position -> source index. Epoch e (positions [e n, (e + 1) n)) is the permutation of range(n)
    that NumPy's PCG64 draws from the seed sequence (seed, e): the index at any position is a function
    of (seed, position) alone, and reaching step 10^6 costs one permutation, as step 10 does."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed

    @functools.lru_cache(maxsize=4)  # the epoch in use and its neighbour; reader threads share them
    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __call__(self, positions) -> np.ndarray:
        epochs, offsets = np.divmod(np.asarray(positions, np.int64), self.n)
        out = np.empty_like(offsets)
        for e in np.unique(epochs):
            here = epochs == e
            out[here] = self.permutation(int(e))[offsets[here]]
        return out


def local_batches(source: Source, data, local_batch: int, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1, threads: int = READ_THREADS):
    """This process's numpy batches {'image': uint8 [b, S, S, C], 'label': [b] int32, 'index': [b] int32 (each
    example's position in the stream)} from `start_step`: rows [p b, (p + 1) b) of each global batch of
    the one stream, so the stream does not depend on the process count.

    data: image_size, channels, crop (random_flip is applied on the device).
    """
    order, first = Order(len(source), seed), process_index * local_batch

    def batch(step):
        start = step * local_batch * process_count + first
        positions = np.arange(start, start + local_batch)
        return _examples(source, order(positions), positions, data)
    yield from _read_ahead(grain.MapDataset.range(start_step, END).map(batch), threads)


def global_batches(source: Source, data, local_batch: int, mesh, seed: int, start_step: int = 0,
                   threads: int = READ_THREADS):
    """Global `jax.Array` batches sharded over the mesh's data axis; `local_batch` is this process's share."""
    sharding = batch_sharding(mesh)
    for batch in local_batches(source, data, local_batch, seed, start_step, jax.process_index(),
                               jax.process_count(), threads):
        yield {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def prefetched(batches, size: int = 2):
    """The same batches in the same order, `size` of them made ahead on a background thread: the reader
    work and the host-to-device copy of the next steps overlap the device's work on this one instead of
    following it. An error in the producer is raised here, at the batch it stopped."""
    ready, stop, end = queue.Queue(maxsize=size), threading.Event(), object()

    def offer(item) -> bool:
        """Puts item in the queue unless the consumer has stopped; returns whether it did."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(end)
        except BaseException as e:  # handed to the consumer, which raises it
            offer(e)

    producer = threading.Thread(target=produce, name="jgen-prefetch", daemon=True)
    producer.start()
    try:
        while (item := ready.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:  # the producer finishes its batch and ends before this returns: no thread outlives the loop
        stop.set()
        producer.join()


def _examples_at(source: Source, data, indices, block: int = 256) -> dict:
    """_examples for every index in `indices`, read 256 at a time by the reader threads, concatenated."""
    indices = np.asarray(indices, np.int64)
    blocks = grain.MapDataset.range(0, len(indices), block).map(
        lambda i: _examples(source, indices[i:i + block], indices[i:i + block], data))
    parts = list(_read_ahead(blocks))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def images_at(source: Source, data, indices) -> np.ndarray:
    """The source's images at `indices`, in that order, preprocessed, unflipped: float32 [n, S, S, C] in [-1, 1]."""
    return from_uint8(_examples_at(source, data, indices)["image"])


def first_images(source: Source, data, num: int) -> np.ndarray:
    """The first `num` images of the source, in order (see images_at)."""
    return images_at(source, data, range(min(num, len(source))))


def uniform_subset(source: Source, num: int, seed: int) -> np.ndarray:
    """Indices of min(num, len(source)) records drawn uniformly without replacement, a function of the
    seed (epoch 0 of `Order`), sorted. A dataset's first records are no sample of it: mnist5k's train
    split, and any folder of class subfolders, is sorted by class."""
    return np.sort(Order(len(source), seed)(np.arange(min(num, len(source)))))


def available_memory() -> int:
    """Bytes the kernel could hand out now without swapping (MemAvailable: free plus reclaimable cache)."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def cache_refusal(source: Source, data, sharers: int = 1, fraction: float = 0.5) -> str:
    """Why `cached` would not fit ("" when it would): the decoded array may take at most `fraction` of
    the memory available now, shared by `sharers` processes on this host that each hold a copy."""
    need, free = len(source) * data.image_size ** 2 * data.channels, available_memory()
    if need * sharers <= fraction * free:
        return ""
    return (f"data.cache=true would hold {need / 2 ** 30:.1f} GiB of decoded images in memory "
            f"{'per process ' if sharers > 1 else ''}but only {free / 2 ** 30:.1f} GiB is available: "
            "set data.cache=false")


def cached(source: Source, data) -> Source:
    """The source decoded and preprocessed once into memory (uint8 [N, S, S, C]): later epochs, and
    resumed runs' first ones, cost an array lookup per image. Check `cache_refusal` first."""
    every = _examples_at(source, data, range(len(source)))
    images, labels = every["image"], every["label"]
    return Source(lambda i: (images[i], int(labels[i])), len(source), source.num_classes, source.name, ready=True)
