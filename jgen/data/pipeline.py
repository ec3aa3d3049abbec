"""The one input pipeline: source -> shuffle -> skip to step -> decode/preprocess -> batch -> global array.

The stream is a pure function of (seed, step): shuffling is seeded, so `batches(..., start_step=k)`
yields exactly what the uninterrupted stream yields from its k-th batch on. Batches cross to the
device as uint8 with each example's stream position; jgen.data.device normalises and flips them
there, the flip a function of (seed, position).
"""

import queue
import threading

import jax
import numpy as np
import tensorflow as tf

from jgen.data.sources import Source
from jgen.images import from_uint8
from jgen.sharding import batch_sharding



def to_channels(image, channels: int):
    """uint8 [H, W, c] with static c in {1, 3, 4} -> [H, W, channels] (alpha dropped, RGB -> luma)."""
    c = image.shape[-1]
    if c == 4:
        image, c = image[..., :3], 3
    if c == channels:
        return image
    if channels == 3 and c == 1:
        return tf.image.grayscale_to_rgb(image)
    if channels == 1 and c == 3:
        return tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), tf.uint8)
    raise ValueError(f"cannot convert {c} channels to {channels}")


def preprocess(image, size: int, channels: int, crop: int = 0):
    """uint8 [H, W, c] -> uint8 [size, size, channels].

    Centre-crops a square of side `crop` (0: the shorter side; larger than the image: the shorter
    side), then resizes with antialiased bilinear filtering, rounding back to uint8 as a PNG of the
    resized image would hold it. Images already of that size are not resized.
    """
    image = to_channels(image, channels)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w) if crop <= 0 else tf.minimum(tf.minimum(h, w), crop)
    image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
    if image.shape[0] != size or image.shape[1] != size:
        image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear", antialias=True)
        image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
    return tf.ensure_shape(image, [size, size, channels])


def local_batches(source: Source, data, local_batch: int, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1):
    """This process's numpy batches {'image': uint8 [b, S, S, C], 'label': [b] int32, 'index': [b] int32 (each
    example's position in the stream)} from `start_step`.

    data: image_size, channels, crop, random_flip, shuffle_buffer. For a source that is not
    `sharded`, process p keeps rows [p b, (p + 1) b) of each global batch of the one shuffled order.
    """
    buffer = data.shuffle_buffer if source.num_examples < 0 else min(source.num_examples, data.shuffle_buffer)
    buffer = max(1, buffer)
    ds = source.dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat().enumerate()
    if source.sharded or process_count == 1:
        ds = ds.skip(start_step * local_batch)
    else:
        ds = ds.skip(start_step * local_batch * process_count)
        ds = ds.filter(lambda index, ex: (index // local_batch) % process_count == process_index)

    def prepare(index, ex):  # normalised and flipped on the device (jgen.data.device), from `index`
        image = preprocess(source.decode(ex["image"]), data.image_size, data.channels, data.crop)
        return {"image": image, "label": ex["label"], "index": tf.cast(index % 2 ** 31, tf.int32)}

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(local_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def global_batches(source: Source, data, local_batch: int, mesh, seed: int, start_step: int = 0):
    """Global `jax.Array` batches sharded over the mesh's data axis; `local_batch` is this process's share."""
    sharding = batch_sharding(mesh)
    for batch in local_batches(source, data, local_batch, seed, start_step, jax.process_index(),
                               jax.process_count()):
        yield {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def prefetched(batches, size: int = 2):
    """The same batches in the same order, `size` of them made ahead on a background thread: the tf.data
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


def first_images(source: Source, data, num: int) -> np.ndarray:
    """The first `num` images of the source, in order, preprocessed, unflipped: float32 [n, S, S, C] in [-1, 1]."""
    ds = source.dataset.take(num).map(
        lambda ex: preprocess(source.decode(ex["image"]), data.image_size, data.channels, data.crop))
    return from_uint8(np.concatenate(list(ds.batch(256).as_numpy_iterator()), axis=0))
