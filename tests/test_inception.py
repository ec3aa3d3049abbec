"""The FID Inception port: resizing against a float64 formula, weight conversion, and pytorch-fid parity.

The parity test needs the `parity-fid` extra (pytorch-fid imports torchvision, which needs torch 2.14.1,
a 5.5 GB CUDA build); without it that test is skipped and the rest still run.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import rel_err
from jgen.errors import JgenError
from jgen.eval import inception


def _bilinear_reference(x, size):
    """F.interpolate(mode='bilinear', align_corners=False) written out in float64 for [H, W] images."""
    def taps(n_in):
        src = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    r0, r1, wr = taps(x.shape[0])
    c0, c1, wc = taps(x.shape[1])
    rows = x[r0] * (1 - wr)[:, None] + x[r1] * wr[:, None]
    return rows[:, c0] * (1 - wc) + rows[:, c1] * wc


@pytest.mark.parametrize("shape", [(28, 28), (32, 20), (400, 301)])
def test_resize_is_pytorch_bilinear(shape):
    x = np.random.default_rng(0).uniform(-1, 1, size=shape)
    got = np.asarray(inception.resize_bilinear(jnp.asarray(x, jnp.float32)[None, ..., None], 299))[0, ..., 0]
    assert np.max(np.abs(got - _bilinear_reference(x, 299))) < 1e-4  # float32 rounding; a wrong rule is off by ~0.1


def _abstract_params():
    return jax.eval_shape(inception.InceptionV3().init, jax.random.PRNGKey(0), jnp.zeros((1, 75, 75, 3)))["params"]


def test_conversion_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    params = jax.tree_util.tree_map(lambda s: rng.normal(size=s.shape).astype(np.float32), _abstract_params())
    state = inception.torch_from_params(params)
    assert state["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)  # torch layout [out, in, kh, kw]
    assert state["fc.weight"].shape == (1008, 2048)
    assert len(state) == 94 * 5 + 2  # 94 conv+bn layers (weight + 4 bn entries each) and fc
    np.savez(tmp_path / "w.npz", **state)
    back = inception.load_params(str(tmp_path / "w.npz"))
    same = jax.tree_util.tree_map(lambda a, b: np.array_equal(a, b), params, back)
    assert all(jax.tree_util.tree_leaves(same))


def test_bad_weights_are_one_line_errors(tmp_path):
    with pytest.raises(JgenError, match="convert-inception"):
        inception.load_params(str(tmp_path / "missing.npz"))
    rng = np.random.default_rng(2)
    state = inception.torch_from_params(
        jax.tree_util.tree_map(lambda s: np.zeros(s.shape, np.float32), _abstract_params()))
    state["fc.weight"] = rng.normal(size=(1000, 2048)).astype(np.float32)  # torchvision's ImageNet head
    np.savez(tmp_path / "w.npz", **state)
    with pytest.raises(JgenError, match="shape"):
        inception.load_params(str(tmp_path / "w.npz"))
    np.savez(tmp_path / "other.npz", **{"layer1.0.conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})
    with pytest.raises(JgenError):
        inception.load_params(str(tmp_path / "other.npz"))


def _random_fid_inception_state(torch, pfid):
    """pytorch-fid's FID Inception, built as `fid_inception_v3` builds it, with random weights and statistics."""
    net = pfid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for name, block in [("Mixed_5b", pfid.FIDInceptionA(192, 32)), ("Mixed_5c", pfid.FIDInceptionA(256, 64)),
                        ("Mixed_5d", pfid.FIDInceptionA(288, 64)), ("Mixed_6b", pfid.FIDInceptionC(768, 128)),
                        ("Mixed_6c", pfid.FIDInceptionC(768, 160)), ("Mixed_6d", pfid.FIDInceptionC(768, 160)),
                        ("Mixed_6e", pfid.FIDInceptionC(768, 192)), ("Mixed_7b", pfid.FIDInceptionE_1(1280)),
                        ("Mixed_7c", pfid.FIDInceptionE_2(2048))]:
        setattr(net, name, block)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("conv.weight"):
            fan_in = value[0].numel()
            value = torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith(("bn.weight", "bn.running_var")):
            value = torch.rand(value.shape, generator=gen) + 0.5
        elif key.endswith(("bn.bias", "bn.running_mean")):
            value = torch.randn(value.shape, generator=gen) * 0.1
        elif key.startswith("fc."):
            value = torch.randn(value.shape, generator=gen) * 0.02
        state[key] = value
    return state


def test_matches_pytorch_fid_with_the_same_weights(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pfid = pytest.importorskip("pytorch_fid.inception")  # the parity-fid extra
    state = _random_fid_inception_state(torch, pfid)
    monkeypatch.setattr(pfid, "load_state_dict_from_url", lambda *a, **k: state)  # no download
    theirs = pfid.InceptionV3([3]).eval()
    torch.save(state, tmp_path / "pt_inception.pth")
    inception.convert(str(tmp_path / "pt_inception.pth"), str(tmp_path / "inception.npz"))  # the CLI's converter
    params = inception.load_params(str(tmp_path / "inception.npz"))

    images = np.random.default_rng(3).uniform(0, 1, size=(2, 3, 32, 32)).astype(np.float32)  # pytorch-fid's input
    with torch.no_grad():
        pool = theirs(torch.from_numpy(images))[0][:, :, 0, 0]
        logits = torch.nn.functional.linear(pool, state["fc.weight"], state["fc.bias"])
    ours = jax.jit(inception.InceptionV3().apply)({"params": params}, images.transpose(0, 2, 3, 1) * 2 - 1)
    assert rel_err(ours["features"], pool.numpy()) < 1e-4
    assert rel_err(ours["logits"], logits.numpy()) < 1e-4


@pytest.mark.parametrize("kernel,stride,padding", [((3, 3), 2, (0, 0)), ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0)),
                                                   ((5, 5), 1, (2, 2)), ((1, 1), 1, (0, 0)), ((3, 3), 2, (1, 1))])
def test_matmul_convolution_equals_xla_convolution(kernel, stride, padding):
    """The CPU path of every Inception convolution shape against lax.conv_general_dilated."""
    from jgen.nn.layers import conv_as_matmul

    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(2, 13, 11, 5)), jnp.float32)
    w = jnp.asarray(rng.normal(size=kernel + (5, 6)), jnp.float32)
    pad = ((padding[0], padding[0]), (padding[1], padding[1]))
    want = jax.lax.conv_general_dilated(x, w, (stride, stride), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision="highest")
    assert rel_err(conv_as_matmul(x, w, stride, pad), want) < 1e-5
