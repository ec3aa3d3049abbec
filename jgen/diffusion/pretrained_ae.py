"""Pretrained KL autoencoders in the layout of diffusers' AutoencoderKL (Stable Diffusion's VAE and its kin)
-> jgen's (jgen.nn.autoencoder), whose module names follow diffusers': `encoder.down_blocks.0.resnets.1.norm1.weight`
is `encoder/down_blocks_0/resnets_1/norm1/scale`. Only tensor layouts change (OIHW -> HWIO, Linear and 1x1
convolutions -> Dense [in, out], jgen.diffusion.pretrained.to_jgen_layout); the old attention names (query, key, value, proj_attn) of checkpoints
converted from CompVis's are accepted too. Files are read as jgen.diffusion.pretrained reads a U-Net's.
"""

import re

import jax.numpy as jnp
from flax.traverse_util import flatten_dict, unflatten_dict

from jgen.diffusion.pretrained import to_jgen_layout
from jgen.errors import JgenError

_OLD_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out_0"}


def ae_overrides(config: dict) -> list:
    """jgen autoencoder config overrides for a diffusers AutoencoderKL config.json; refuses what jgen's
    network cannot express."""
    if config.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        raise JgenError(f"config.json describes a {config['_class_name']}; jgen imports AutoencoderKL")
    for key, want in (("act_fn", "silu"), ("use_quant_conv", True), ("use_post_quant_conv", True)):
        if config.get(key, want) != want:
            raise JgenError(f"diffusers config has {key}={config[key]!r}; jgen's autoencoder needs {want!r}")
    if config.get("in_channels", 3) != config.get("out_channels", 3):
        raise JgenError("diffusers config has in_channels != out_channels; jgen's autoencoder reconstructs its input")
    chans = list(config.get("block_out_channels", (64,)))
    if any(c % chans[0] for c in chans):
        raise JgenError(f"block_out_channels {chans} are not multiples of the first")
    return [f"data.channels={config.get('in_channels', 3)}", f"model.ch={chans[0]}",
            f"model.ch_mult={tuple(c // chans[0] for c in chans)}",
            f"model.num_res_blocks={config.get('layers_per_block', 1)}",
            f"model.z_channels={config.get('latent_channels', 4)}", f"model.num_groups={config.get('norm_num_groups', 32)}",
            f"model.mid_attention={bool(config.get('mid_block_add_attention', True))}"]


def _jgen_key(key: str) -> tuple:
    """'encoder.mid_block.attentions.0.to_out.0.weight' -> ('encoder/mid_block/attentions_0/to_out_0', 'weight')."""
    path = re.sub(r"\.(\d+)(?=\.|$)", r"_\1", key)
    *mods, leaf = path.split(".")
    if mods and mods[-1] in _OLD_ATTENTION:
        mods[-1] = _OLD_ATTENTION[mods[-1]]
    return "/".join(mods), leaf


def ae_params_from_diffusers(state: dict, like) -> dict:
    """The state dict (float32 NumPy arrays) converted into the structure of `like` (jgen autoencoder params
    or their shapes). Every tensor must find its place and every parameter must be given."""
    flat = flatten_dict(like)  # (Flax keeps a name such as 'down_blocks_0/resnets_1' as one key)
    want, keys = {"/".join(k): v for k, v in flat.items()}, {"/".join(k): k for k in flat}
    out = {}
    for key, value in state.items():
        module, leaf = _jgen_key(key)
        if leaf == "bias":
            name = f"{module}/bias"
        elif f"{module}/scale" in want:
            name = f"{module}/scale"
        else:
            name = f"{module}/kernel"
        if name not in want:
            raise JgenError(f"'{key}' has no place in this autoencoder: check the config (widths, levels, blocks)")
        out[name] = jnp.asarray(to_jgen_layout(value, want[name].shape, key, name))
    missing = sorted(set(want) - set(out))
    if missing:
        raise JgenError(f"the weights lack {len(missing)} of the autoencoder's tensors, e.g. {missing[0]}")
    return unflatten_dict({keys[k]: v for k, v in out.items()})
