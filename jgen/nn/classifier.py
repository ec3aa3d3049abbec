"""The small classifier `jgen train-classifier` trains (jgen.eval.classifier), and its weights file: an offline
feature network for the evaluator's FID on classifier features and the autoencoder's perceptual loss."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from jgen.errors import JgenError

FEATURES = 128


class Classifier(nn.Module):
    """images [N, S, S, C] in [-1, 1] -> {'features': [N, 128] (post-ReLU penultimate), 'logits': [N, classes]}."""

    num_classes: int

    @nn.compact
    def __call__(self, x):
        for i, (features, stride) in enumerate([(32, 1), (32, 2), (64, 1), (64, 2), (128, 2)]):
            x = nn.relu(nn.Conv(features, (3, 3), stride, name=f"conv{i}")(x))
        features = nn.relu(nn.Dense(FEATURES, name="penultimate")(jnp.mean(x, axis=(1, 2))))
        return {"features": features, "logits": nn.Dense(self.num_classes, name="logits")(features)}


def load_classifier(path: str):
    """(model, params, meta) from a directory written by `jgen train-classifier`."""
    meta_path, weights = os.path.join(path, "classifier.json"), os.path.join(path, "classifier.msgpack")
    if not (os.path.exists(meta_path) and os.path.exists(weights)):
        raise JgenError(f"no classifier in '{path}': train one with `jgen train-classifier --out {path or 'DIR'}`")
    with open(meta_path) as f:
        meta = json.load(f)
    model = Classifier(meta["num_classes"])
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                            jnp.zeros((1, meta["image_size"], meta["image_size"], meta["channels"])))["params"]
    with open(weights, "rb") as f:
        try:
            params = serialization.from_bytes(jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes),
                                              f.read())
        except (ValueError, KeyError) as e:
            raise JgenError(f"{weights} does not hold this classifier's weights: {e}") from None
    return model, params, meta


def save_classifier(path: str, params, meta: dict) -> None:
    """Writes PATH/classifier.msgpack (params) and PATH/classifier.json (meta: num_classes, image_size,
    channels and any notes), the directory `load_classifier` reads."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "classifier.msgpack"), "wb") as f:
        f.write(serialization.to_bytes(jax.device_get(params)))
    with open(os.path.join(path, "classifier.json"), "w") as f:
        json.dump(meta, f, indent=1)
