"""A small classifier trained on a dataset's labels, whose penultimate layer is an offline feature extractor.

Where the Inception weights cannot be had (no internet) or do not fit the data (28x28 digits), distances
between the 128-d features of a classifier trained on that dataset rank generators much as FID does
(the "FID with a domain classifier" used for MNIST since Heusel et al.). Numbers from it are always
named `*_classifier`, never FID.
"""

import os
from functools import partial

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from jgen.errors import JgenError

from jgen.nn.classifier import FEATURES, Classifier, load_classifier, save_classifier  # noqa: F401


def _data_config(image_size, channels, crop=0):
    return ml_collections.ConfigDict(dict(image_size=image_size, channels=channels, crop=crop,
                                          random_flip=False))


def _loss(model, params, batch):
    logits = model.apply({"params": params}, batch["image"])["logits"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == batch["label"])


def accuracy(model, params, images, labels, batch: int = 500) -> float:
    apply = jax.jit(lambda p, x: jnp.argmax(model.apply({"params": p}, x)["logits"], -1))
    preds = np.concatenate([np.asarray(apply(params, images[i:i + batch])) for i in range(0, len(images), batch)])
    return float(np.mean(preds == labels))


def train_classifier(source_spec: str, out_dir: str, image_size: int, channels: int, steps: int = 1500,
                     batch_size: int = 64, lr: float = 1e-3, seed: int = 0, data_dir: str = "",
                     crop: int = 0, test_split: str = "test") -> dict:
    """Trains with Adam on the labelled source, reports test accuracy, writes OUT/classifier.{msgpack,json}."""
    from jgen.data.pipeline import first_images
    from jgen.data.sources import open_source, with_split

    source = open_source(source_spec, data_dir)
    if source.num_classes < 2:
        raise JgenError(f"{source_spec} has no class labels to train a classifier on")
    data = _data_config(image_size, channels, crop)
    model, params, loss = fit(source, data, steps, batch_size, lr, seed)
    meta = dict(source=source_spec, image_size=image_size, channels=channels, crop=crop,
                num_classes=source.num_classes, features=FEATURES, steps=steps, final_loss=float(loss))
    try:
        test = open_source(with_split(source_spec, test_split), data_dir)
        images = first_images(test, data, 10**9)
        labels = test.labels(len(images))
        meta.update(test_split=test_split, test_accuracy=accuracy(model, params, images, labels),
                    num_test=len(labels))
    except JgenError as e:
        meta.update(test_accuracy=None, test_note=str(e))
    save_classifier(out_dir, params, meta)
    return meta


def fit(source, data, steps: int, batch_size: int = 64, lr: float = 1e-3, seed: int = 0):
    """(model, params, last loss): the Classifier trained with Adam for `steps` batches of the labelled
    `source` (jgen.data.sources.Source) read as `data` (image_size, channels, crop) describes, on the mesh
    of every device. Used by `train_classifier` and by benchmarks/augmentation.py (sources in memory)."""
    from jgen.data.device import model_inputs
    from jgen.data.pipeline import global_batches
    from jgen.sharding import batch_sharding, check_batch, make_mesh, replicated

    mesh = make_mesh()
    image_size, channels = data.image_size, data.channels
    model, tx = Classifier(source.num_classes), optax.adam(lr)
    params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, image_size, image_size, channels)))["params"]
    opt_state = tx.init(params)

    @partial(jax.jit, donate_argnums=(0, 1), in_shardings=(replicated(mesh), replicated(mesh), batch_sharding(mesh)))
    def step(params, opt_state, batch):
        batch = model_inputs(batch, data, seed)
        (loss, acc), grads = jax.value_and_grad(partial(_loss, model), has_aux=True)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, acc

    # Batches made on this thread (the classifier's step is too small to hide reading behind): with reader
    # threads busy while the first step ran, its all-reduce over 8 fake CPU devices on 2 cores hung in 4 of
    # 9 runs with a fresh compile (XLA:CPU; 0 of 5 without the threads)
    batches = global_batches(source, data, check_batch(batch_size, mesh), mesh, seed=seed, threads=0)
    bar = tqdm(range(steps), desc="train-classifier", unit="step", mininterval=1.0 if os.isatty(2) else 30.0)
    for _ in bar:
        params, opt_state, loss, acc = step(params, opt_state, next(batches))
    bar.close()
    return model, params, loss


