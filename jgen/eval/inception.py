"""The FID Inception-v3 (TensorFlow's 2015-12-05 graph, as pytorch-fid and TF-GAN use it) in Flax.

It differs from the classification Inception-v3 in ways that change FID: 1008 classes, average pools
in the mixed blocks that ignore padding (TensorFlow's rule), and a max pool in the last block's pool
branch. Layer names are pytorch-fid's, so its state dict maps one to one; weights come from a local
`.npz` written by `jgen convert-inception` from pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`.

Resizing follows pytorch-fid: bilinear to 299x299 with half-pixel centres and no antialiasing
(`F.interpolate(..., mode='bilinear', align_corners=False)`). clean-fid instead resizes with PIL's
antialiased bicubic filter on uint8 images, so its FIDs differ from these (and pytorch-fid's) slightly.
"""

import os
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.errors import JgenError
from jgen.nn.conv import on_cpu
from jgen.nn.layers import conv_as_matmul

WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
DEFAULT_PATH = os.path.expanduser("~/.cache/jgen/inception-2015-12-05.npz")
FEATURES = 2048
CLASSES = 1008


class FrozenBatchNorm(nn.Module):
    """Inference-only batch norm: the running statistics are parameters, TensorFlow's eps 1e-3."""

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        scale, bias = self.param("scale", nn.initializers.ones, (c,)), self.param("bias", nn.initializers.zeros, (c,))
        mean, var = self.param("mean", nn.initializers.zeros, (c,)), self.param("var", nn.initializers.ones, (c,))
        return (x - mean) * (scale * jax.lax.rsqrt(var + 1e-3)) + bias


class Conv(nn.Module):
    """A bias-free convolution whose kernel is stored as nn.Conv stores it: im2col + matmul on CPU
    (`conv_as_matmul`), the native convolution elsewhere; both at HIGHEST precision on every platform,
    so features match pytorch-fid's float32 ones on a GPU (no TF32) and a TPU (no one-pass bf16)."""

    features: int
    kernel: tuple
    stride: int
    padding: tuple

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), self.kernel + (x.shape[-1], self.features))
        pad = ((self.padding[0], self.padding[0]), (self.padding[1], self.padding[1]))
        plain = partial(jax.lax.conv_general_dilated, window_strides=(self.stride, self.stride), padding=pad,
                        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
        return on_cpu(lambda x, k: conv_as_matmul(x, k, self.stride, pad, jax.lax.Precision.HIGHEST), plain,
                      x, kernel)


class BasicConv(nn.Module):
    """conv (no bias) -> batch norm -> ReLU; `padding` is (rows, cols) of zeros on each side."""

    features: int
    kernel: tuple = (1, 1)
    stride: int = 1
    padding: tuple = (0, 0)

    @nn.compact
    def __call__(self, x):
        x = Conv(self.features, self.kernel, self.stride, self.padding, name="conv")(x)
        return nn.relu(FrozenBatchNorm(name="bn")(x))


def _avg_pool(x):
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x, stride=2, pad=0):
    return nn.max_pool(x, (3, 3), (stride, stride), ((pad, pad), (pad, pad)))


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv(64, name="branch1x1")(x)
        b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(BasicConv(48, name="branch5x5_1")(x))
        b3 = BasicConv(64, name="branch3x3dbl_1")(x)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = BasicConv(self.pool_features, name="branch_pool")(_avg_pool(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(384, (3, 3), 2, name="branch3x3")(x)
        bd = BasicConv(64, name="branch3x3dbl_1")(x)
        bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv(96, (3, 3), 2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool(x)], axis=-1)


class InceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c = self.channels_7x7
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        b1 = BasicConv(192, name="branch1x1")(x)
        b7 = BasicConv(c, name="branch7x7_1")(x)
        b7 = BasicConv(c, **row, name="branch7x7_2")(b7)
        b7 = BasicConv(192, **col, name="branch7x7_3")(b7)
        bd = BasicConv(c, name="branch7x7dbl_1")(x)
        bd = BasicConv(c, **col, name="branch7x7dbl_2")(bd)
        bd = BasicConv(c, **row, name="branch7x7dbl_3")(bd)
        bd = BasicConv(c, **col, name="branch7x7dbl_4")(bd)
        bd = BasicConv(192, **row, name="branch7x7dbl_5")(bd)
        bp = BasicConv(192, name="branch_pool")(_avg_pool(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(320, (3, 3), 2, name="branch3x3_2")(BasicConv(192, name="branch3x3_1")(x))
        b7 = BasicConv(192, name="branch7x7x3_1")(x)
        b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv(192, (3, 3), 2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)


class InceptionE(nn.Module):
    max_pool: bool  # the FID graph's last block pools with max, its first with (padding-free) average

    @nn.compact
    def __call__(self, x):
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        b1 = BasicConv(320, name="branch1x1")(x)
        b3 = BasicConv(384, name="branch3x3_1")(x)
        b3 = jnp.concatenate([BasicConv(384, **row, name="branch3x3_2a")(b3),
                              BasicConv(384, **col, name="branch3x3_2b")(b3)], axis=-1)
        bd = BasicConv(448, name="branch3x3dbl_1")(x)
        bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([BasicConv(384, **row, name="branch3x3dbl_3a")(bd),
                              BasicConv(384, **col, name="branch3x3dbl_3b")(bd)], axis=-1)
        pooled = _max_pool(x, stride=1, pad=1) if self.max_pool else _avg_pool(x)
        bp = BasicConv(192, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def resize_bilinear(images, size: int = 299):
    """[N, H, W, C] -> [N, size, size, C], bilinear with half-pixel centres and no antialiasing."""
    n, _, _, c = images.shape
    return jax.image.resize(images, (n, size, size, c), method="bilinear", antialias=False)


class InceptionV3(nn.Module):
    """images [N, H, W, 1 or 3] in [-1, 1] -> {'features': pool3 [N, 2048], 'logits': [N, 1008]}.

    pytorch-fid takes [0, 1] and maps x -> 2x - 1 after resizing; resizing is linear with weights
    summing to one, so resizing [-1, 1] images directly gives the same input.
    """

    resize: bool = True

    @nn.compact
    def __call__(self, images):
        x = images.astype(jnp.float32)
        if x.shape[-1] == 1:
            x = jnp.repeat(x, 3, axis=-1)
        if self.resize:
            x = resize_bilinear(x)
        x = BasicConv(32, (3, 3), 2, name="Conv2d_1a_3x3")(x)
        x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = _max_pool(BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x))
        x = BasicConv(80, name="Conv2d_3b_1x1")(x)
        x = _max_pool(BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x))
        for name, pool in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = InceptionA(pool, name=name)(x)
        x = InceptionB(name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(c7, name=name)(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(max_pool=False, name="Mixed_7b")(x)
        x = InceptionE(max_pool=True, name="Mixed_7c")(x)
        features = jnp.mean(x, axis=(1, 2))
        return {"features": features,
                "logits": nn.Dense(CLASSES, precision=jax.lax.Precision.HIGHEST, name="fc")(features)}


_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def params_from_torch(state: dict) -> dict:
    """pytorch-fid's state dict (name -> array, torch layouts) -> this module's params (Flax layouts)."""
    params: dict = {}
    for key, value in state.items():
        *path, leaf = key.split(".")
        if leaf == "num_batches_tracked":
            continue
        value = np.asarray(value, np.float32)
        if path[-1] == "conv":  # [out, in, kh, kw] -> [kh, kw, in, out]
            path, leaf, value = path, "kernel", value.transpose(2, 3, 1, 0)
        elif path[-1] == "bn":
            leaf = _BN[leaf]
        elif path == ["fc"]:
            leaf, value = ("kernel", value.T) if leaf == "weight" else ("bias", value)
        else:
            raise JgenError(f"unexpected entry '{key}': not a pytorch-fid Inception state dict")
        node = params
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = value
    return params


def torch_from_params(params: dict) -> dict:
    """The inverse of `params_from_torch` (without num_batches_tracked), for round-trip checks."""
    out = {}
    inverse_bn = {v: k for k, v in _BN.items()}
    for path, value in jax.tree_util.tree_flatten_with_path(params)[0]:
        names = [p.key for p in path]
        value = np.asarray(value)
        if names[-2] == "conv":
            out[".".join(names[:-1] + ["weight"])] = value.transpose(3, 2, 0, 1)
        elif names[-2] == "bn":
            out[".".join(names[:-1] + [inverse_bn[names[-1]]])] = value
        else:
            out["fc." + ("weight" if names[-1] == "kernel" else "bias")] = value.T if names[-1] == "kernel" else value
    return out


def convert(src: str, dst: str) -> int:
    """pytorch-fid's .pth -> a torch-free .npz of the same entries; returns the parameter count."""
    try:
        import torch
    except ImportError:
        raise JgenError("converting a .pth needs PyTorch once: pip install torch (the CPU build is enough)") from None
    if not os.path.exists(src):
        raise JgenError(f"no such file: {src} (download it from {WEIGHTS_URL})")
    state = torch.load(src, map_location="cpu", weights_only=True)
    arrays = {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    params = params_from_torch(arrays)  # validates the names before anything is written
    check_params(params)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    np.savez(dst, **arrays)
    return sum(int(np.prod(v.shape)) for v in arrays.values())


def check_params(params: dict) -> None:
    """Raises a one-line error unless `params` has exactly the structure and shapes of InceptionV3."""
    want = jax.eval_shape(InceptionV3().init, jax.random.PRNGKey(0), jnp.zeros((1, 75, 75, 3)))["params"]
    got = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.float32), params)
    if jax.tree_util.tree_structure(want) != jax.tree_util.tree_structure(got):
        raise JgenError("the weights are not the FID Inception-v3's (different layers); use pytorch-fid's "
                        "pt_inception-2015-12-05-6726825d.pth")
    for (path, w), g in zip(jax.tree_util.tree_flatten_with_path(want)[0], jax.tree_util.tree_leaves(got)):
        if w.shape != g.shape:
            raise JgenError(f"Inception weight {jax.tree_util.keystr(path)} has shape {g.shape}, expected {w.shape}")


def load_params(path: str = "") -> dict:
    """Params from a converted .npz (`path`, else $JGEN_INCEPTION, else ~/.cache/jgen/...)."""
    path = path or os.environ.get("JGEN_INCEPTION", "") or DEFAULT_PATH
    if not os.path.exists(path):
        raise JgenError(f"Inception weights not found at {path}: download {WEIGHTS_URL} on a connected machine, "
                        f"then `jgen convert-inception pt_inception-2015-12-05-6726825d.pth {path}` "
                        "(or use --extractor classifier)")
    with np.load(path) as f:
        params = params_from_torch({k: f[k] for k in f.files})
    check_params(params)
    return params
