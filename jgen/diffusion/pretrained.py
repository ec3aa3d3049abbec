"""Pretrained DDPM weights in the layout of diffusers' UNet2DModel -> jgen's U-Net.

The original DDPM checkpoints (google/ddpm-cifar10-32 and its LSUN/CelebA-HQ kin) were ported to
diffusers with the paper's architecture: sinusoidal time embedding as sin | cos with frequencies
10000^(-i / (half - 1)) (freq_shift=1, flip_sin_to_cos=False), single-head attention, GroupNorm eps
1e-6, and stride-2 downsampling padded (0, 1) (downsample_padding=0), exactly jgen's UNet. Only the
names and tensor layouts differ; this module maps them and refuses any other configuration.

Reading needs no torch for .safetensors files (the format is a JSON header and raw little-endian
arrays); .bin/.pt files are pickles and need torch.
"""

import json
import os
import re
import struct

import jax
import jax.numpy as jnp
import numpy as np

from jgen.errors import JgenError

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}
# old diffusers (0.0.x, the original hub upload) and current names of the attention layers
_ATTN = {"query": "q", "key": "k", "value": "v", "proj_attn": "proj_out", "to_q": "q", "to_k": "k",
         "to_v": "v", "to_out.0": "proj_out", "group_norm": "norm"}
_RESNET = {"norm1": "norm1", "conv1": "conv1", "time_emb_proj": "temb_proj", "norm2": "norm2", "conv2": "conv2",
           "conv_shortcut": "nin_shortcut"}


def read_safetensors(path: str) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = np.frombuffer(data[start:end], np.uint16 if info["dtype"] == "BF16" else _DTYPES[info["dtype"]])
        if info["dtype"] == "BF16":  # bfloat16 is the top half of a float32
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[name] = raw.reshape(info["shape"]).astype(np.float32)
    return out


def read_weights(path: str):
    """(state dict of float32 NumPy arrays, diffusers config dict or {}) from a file or a model directory."""
    path = os.path.expanduser(path)
    config = {}
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "config.json")):
            with open(os.path.join(path, "config.json")) as f:
                config = json.load(f)
        found = [os.path.join(path, n) for n in WEIGHT_FILES if os.path.exists(os.path.join(path, n))]
        if not found:
            raise JgenError(f"{path} holds none of {', '.join(WEIGHT_FILES)}")
        path = found[0]
    if not os.path.exists(path):
        raise JgenError(f"weights file {path} does not exist")
    if path.endswith(".safetensors"):
        return read_safetensors(path), config
    try:
        import torch
    except ImportError:
        raise JgenError(f"{path} is a PyTorch pickle: reading it needs torch (pip install torch), "
                        "or give the .safetensors file") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}, config


def model_overrides(config: dict) -> list:
    """jgen config overrides for a diffusers UNet2DModel config; refuses what jgen's UNet cannot express."""
    if not config:
        return []
    fixed = {"time_embedding_type": "positional", "freq_shift": 1, "flip_sin_to_cos": False, "downsample_padding": 0,
             "act_fn": "silu", "center_input_sample": False, "norm_eps": 1e-6}
    for key, want in fixed.items():
        if config.get(key, want) != want:
            raise JgenError(f"diffusers config has {key}={config[key]!r}; jgen's DDPM U-Net needs {want!r}")
    if config.get("attention_head_dim") not in (None, max(config["block_out_channels"])):
        raise JgenError("diffusers config has multi-head attention; jgen's DDPM U-Net is single-head")
    chans = list(config["block_out_channels"])
    if any(c % chans[0] for c in chans):
        raise JgenError(f"block_out_channels {chans} are not multiples of the first")
    size = config["sample_size"]
    down = [t.startswith("Attn") for t in config["down_block_types"]]
    if [t.startswith("Attn") for t in config["up_block_types"]] != down[::-1]:
        raise JgenError("diffusers config has up_block_types whose attention does not mirror the down blocks'")
    attn = [size // 2 ** i for i, a in enumerate(down) if a]
    return [f"data.image_size={size}", f"data.channels={config.get('in_channels', 3)}", f"model.ch={chans[0]}",
            f"model.ch_mult={tuple(c // chans[0] for c in chans)}", f"model.num_res_blocks={config['layers_per_block']}",
            f"model.attn_resolutions={tuple(attn)}", f"model.num_groups={config.get('norm_num_groups', 32)}"]


def _jgen_path(key: str, levels: int) -> tuple:
    """'down_blocks.1.attentions.0.to_q.weight' -> ('down_1_attn_0', 'q', 'weight')."""
    rules = [(r"conv_in\.(\w+)$", lambda m: ("conv_in",)),
             (r"time_embedding\.linear_(\d)\.", lambda m: (f"temb_dense{int(m[1]) - 1}",)),
             (r"conv_norm_out\.", lambda m: ("norm_out",)),
             (r"conv_out\.", lambda m: ("conv_out",)),
             (r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)\.\w+$",
              lambda m: (f"{m[1]}_{_level(m, levels)}_{'block' if m[3] == 'resnets' else 'attn'}_{m[4]}",
                         (_RESNET if m[3] == "resnets" else _ATTN)[m[5]])),
             (r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.", lambda m: (f"down_{m[1]}_downsample",)),
             (r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.", lambda m: (f"up_{levels - 1 - int(m[1])}_upsample",)),
             (r"mid_block\.resnets\.(\d)\.(.+)\.\w+$", lambda m: (f"mid_block_{m[1]}", _RESNET[m[2]])),
             (r"mid_block\.attentions\.0\.(.+)\.\w+$", lambda m: ("mid_attn", _ATTN[m[1]]))]
    for pattern, fn in rules:
        m = re.match(pattern, key)
        if m:
            try:
                return fn(m) + (key.rsplit(".", 1)[1],)
            except KeyError:
                break
    raise JgenError(f"unexpected tensor '{key}' in the weights: not a DDPM UNet2DModel checkpoint")


def _level(m, levels):
    return int(m[2]) if m[1] == "down" else levels - 1 - int(m[2])


def to_jgen_layout(value: np.ndarray, shape: tuple, key: str, name: str) -> np.ndarray:
    """A PyTorch tensor in jgen's layout for a parameter of `shape`: OIHW convolutions -> HWIO, Linear and 1x1
    convolutions -> Dense [in, out]; one line naming both when the shapes still differ."""
    if value.ndim == 4 and len(shape) == 4:
        value = value.transpose(2, 3, 1, 0)
    elif value.ndim in (2, 4) and len(shape) == 2:
        value = value.reshape(value.shape[:2]).T
    if value.shape != tuple(shape):
        raise JgenError(f"'{key}' has shape {value.shape}, jgen's {name} needs {tuple(shape)}")
    return value


def params_from_diffusers(state: dict, like) -> dict:
    """The state dict converted into the structure of `like` (jgen UNet params or their shapes)."""
    levels = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("down_blocks."))
    out = {}
    for key, value in state.items():
        *mods, kind = _jgen_path(key, levels)
        target = like
        for mod in mods:
            target = target.get(mod) if isinstance(target, dict) else None
        if target is None:
            raise JgenError(f"'{key}' has no place in this U-Net: check the config (channels, levels, attention)")
        name = "bias" if kind == "bias" else ("scale" if "scale" in target else "kernel")
        value = to_jgen_layout(value, target[name].shape, key, f"{'/'.join(mods)}.{name}")
        node = out
        for mod in mods:
            node = node.setdefault(mod, {})
        node[name] = jnp.asarray(value)
    missing = set(jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(like)) - set(
        jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(out))
    if missing:
        raise JgenError(f"the weights lack {len(missing)} of the U-Net's tensors, e.g. {sorted(missing)[0]}")
    return out


def load_weights(path: str, config):
    """(config, state dict) of the weights at `path`: config (a diffusion config, e.g. the ddpm_cifar10
    recipe, for schedule, sampler and data) with its model section replaced by what the checkpoint's
    config.json says, when it is there. params_from_diffusers turns the state dict into U-Net params."""
    from jgen.config import apply_overrides, check

    if config.family != "diffusion":
        raise JgenError(f"--weights loads a DDPM U-Net; the config is a {config.family} config")
    state_dict, dconfig = read_weights(path)
    config = apply_overrides(config, model_overrides(dconfig))
    check(config)
    return config, state_dict
