"""Pretrained DDPM weights from diffusers' UNet2DModel layout: the reader, the refusals, and (with the
diffusers package installed) epsilon parity with a random UNet2DModel in google/ddpm-cifar10-32's
configuration, and `jgen sample --weights`."""

import json
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import jgen, one_line_error, rel_err
from jgen.config import load_config
from jgen.diffusion import pretrained
from jgen.errors import JgenError
from jgen.nn.unet import UNet

# google/ddpm-cifar10-32's config.json (the original DDPM CIFAR-10 model as ported to diffusers)
CIFAR = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
             down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
             up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), layers_per_block=2,
             attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6,
             norm_num_groups=32, act_fn="silu", center_input_sample=False, time_embedding_type="positional")


def write_safetensors(path, arrays, dtype="F32"):
    """The format as its specification gives it: u64 header length, JSON header, packed raw data."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in arrays.items():
        raw = a.astype(np.float32).tobytes() if dtype == "F32" else (
            (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes())
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


@pytest.mark.parametrize("dtype", ["F32", "BF16"])
def test_safetensors_reader(tmp_path, dtype):
    rng = np.random.default_rng(0)
    arrays = {"a.weight": rng.normal(size=(3, 4, 2, 2)).astype(np.float32), "b.bias": np.float32([1.5, -2.0])}
    write_safetensors(tmp_path / "w.safetensors", arrays, dtype)
    got = pretrained.read_safetensors(str(tmp_path / "w.safetensors"))
    for k, v in arrays.items():
        tol = 0 if dtype == "F32" else 2 ** -7  # bfloat16 keeps 8 significant bits
        assert got[k].shape == v.shape and np.all(np.abs(got[k] - v) <= tol * np.abs(v))


def test_refuses_other_architectures_and_foreign_tensors():
    assert "model.ch_mult=(1, 2, 2, 2)" in pretrained.model_overrides(CIFAR)
    assert "model.attn_resolutions=(16,)" in pretrained.model_overrides(CIFAR)
    for key, value in [("flip_sin_to_cos", True), ("freq_shift", 0), ("downsample_padding", 1),
                       ("attention_head_dim", 8), ("up_block_types", CIFAR["down_block_types"])]:
        with pytest.raises(JgenError, match=key if key != "attention_head_dim" else "single-head"):
            pretrained.model_overrides(dict(CIFAR, **{key: value}))
    like = {"conv_in": {"kernel": jax.ShapeDtypeStruct((3, 3, 3, 8), jnp.float32)}}
    with pytest.raises(JgenError, match="not a DDPM UNet2DModel"):
        pretrained.params_from_diffusers({"down_blocks.0.x": np.zeros(1), "encoder.layer.weight": np.zeros(1)}, like)


def _diffusers_model(diffusers, torch, **kw):
    torch.manual_seed(0)
    model = diffusers.UNet2DModel(**dict(CIFAR, **kw)).eval()
    with torch.no_grad():  # GroupNorm affine parameters start at 1 / 0: make them random too
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    return model


def test_random_ddpm_cifar10_unet2dmodel_gives_jgens_epsilon(tmp_path):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    model = _diffusers_model(diffusers, torch)
    model.save_pretrained(tmp_path / "ddpm-cifar10-32")
    assert sum(p.numel() for p in model.parameters()) == 35_746_307  # the paper's 35.7M
    from jgen.run import open_run

    run = open_run(weights=str(tmp_path / "ddpm-cifar10-32"), config=load_config("ddpm_cifar10"))
    config, state = run.config, run.state
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 3, 32, 32)).astype(np.float32)
    t = np.array([0, 500, 999])
    with torch.no_grad():
        ref = model(torch.from_numpy(x), torch.from_numpy(t)).sample.numpy().transpose(0, 2, 3, 1)
    m = config.model
    unet = UNet(ch=m.ch, ch_mult=tuple(m.ch_mult), num_res_blocks=m.num_res_blocks,
                attn_resolutions=tuple(m.attn_resolutions), num_groups=m.num_groups, out_ch=3)
    got = jax.jit(unet.apply)({"params": state.params}, jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(t))
    print("relative error", rel_err(got, ref))
    assert rel_err(got, ref) < 1e-4


def test_sample_with_weights_writes_a_grid(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    small = dict(sample_size=16, block_out_channels=(32, 64), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, norm_num_groups=8)
    _diffusers_model(diffusers, torch, **small).save_pretrained(tmp_path / "small", safe_serialization=False)
    out = tmp_path / "grid.png"
    stdout, _ = jgen(capsys, "sample", "--weights", tmp_path / "small", "--num", 4, "--steps", 3, "--out", out)
    assert "4 samples" in stdout and out.exists() and os.path.exists(tmp_path / "grid.npz")
    one_line_error(jgen(capsys, "sample", "--weights", tmp_path / "nothing-here", "--num", 4, code=2)[1],
                   "does not exist")
