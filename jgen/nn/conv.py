"""Convolution forms XLA:CPU runs fast, shared by the DCGAN, beta-VAE and U-Net layers (NHWC, HWIO).

Each is the same function as the plain lax convolution it replaces (tests compare them with lax and
with float64 loops); only the way XLA computes it, mostly the backward pass, differs. Timings are in
benchmarks/results/cpu2-perf-2026-11-27.md. They were chosen for XLA:CPU, so the layers call them
through `on_cpu`: a GPU or TPU compiles the plain lax form, which cuDNN and the TPU compiler know best.
"""

from functools import partial

import jax
import jax.numpy as jnp

_DN = ("NHWC", "HWIO", "NHWC")


def on_cpu(cpu_form, plain_form, *args):
    """cpu_form(*args) where the computation is lowered for a CPU, plain_form(*args) everywhere else.

    lax.platform_dependent resolves per platform at lowering time: a jit on a CPU and a
    jax.export(..., platforms=("cuda",)) each keep only their own branch (tests/test_lowering.py).
    """
    return jax.lax.platform_dependent(*args, cpu=cpu_form, default=plain_form)


def materialised(residuals):
    """The backward pass's inputs behind an optimisation barrier, on CPU.

    XLA:CPU computes a convolution's weight gradient from transposed copies of its input and output
    gradient, and fuses their producers (bias, activation, normalisation, the phase interleave of
    `_phases`) into those transposing copies, which then recompute them in a cache-hostile order.
    Behind a barrier the copies read stored tensors: the CelebA beta-VAE step took 92-99 ms against
    98-106 without it, the mnist5k U-Net step ~6% less (same-process A/Bs). XLA:CPU drops barriers
    unless its cse_barrier_expander pass is disabled, which jgen.host.configure() does; on other
    platforms nothing is added. Barriers change no values.
    """
    return on_cpu(jax.lax.optimization_barrier, lambda r: r, residuals)


def _conv_same(x, kernel, stride):
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=_DN)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_same(x, kernel, stride: int = 1):
    """lax's SAME convolution (what nn.Conv computes), its gradients taken from `materialised` inputs."""
    return _conv_same(x, kernel, stride)


def _conv_same_fwd(x, kernel, stride):
    return _conv_same(x, kernel, stride), (x, kernel)


def _conv_same_bwd(stride, res, dy):
    x, kernel, dy = materialised((*res, dy))
    return jax.vjp(lambda x, k: _conv_same(x, k, stride), x, kernel)[1](dy)


conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)


def conv_transpose_reference(x, w):
    """PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1) via lax.conv_transpose.

    x: [B, H, W, Cin]; w: [4, 4, Cin, Cout] with w[i, j] = torch_weight[:, :, i, j] (the scatter
    convention: input pixel m adds w[k] to output 2m - 1 + k). Returns [B, 2H, 2W, Cout].
    """
    return jax.lax.conv_transpose(x, w[::-1, ::-1], (2, 2), ((2, 2), (2, 2)), dimension_numbers=_DN)


def _phase_convs(x, taps):
    """[B, 2H, 2W, Cout] whose output phase (p, q) (rows 2j + p, columns 2k + q) is the 2x2 stride-1
    convolution of x, padded (1 - p, p) by (1 - q, q), with kernel taps(p, q) [2, 2, Cin, Cout]."""
    b, h, w, _ = x.shape
    y = jnp.stack([jnp.stack([jax.lax.conv_general_dilated(x, taps(p, q), (1, 1), ((1 - p, p), (1 - q, q)),
                                                           dimension_numbers=_DN) for q in range(2)], 3)
                   for p in range(2)], 2)  # [b, h, p, w, q, cout]
    return y.reshape(b, 2 * h, 2 * w, y.shape[-1])


def _phases(x, w):
    """The same function as `conv_transpose_reference`, as stride-1 convolutions over the four output phases.

    Output pixel 2j + p (p in {0, 1}, per axis) receives input pixels j - 1 + p + a (a in {0, 1})
    through kernel tap 3 - p - 2a: each phase is a 2x2 stride-1 convolution of the input, padded by
    1 - p before and p after, and the four phases interleave into the doubled image. Where the
    output has more than 4 channels each phase is its own convolution, its padding left to the
    convolution itself. For image outputs (at most 4 channels) such convolutions are too thin to
    run well, so one convolution of the input padded by one computes all phases at once (4 * Cout
    channels on an (H+1) x (W+1) grid), then a depth-to-space and a one-pixel crop. On XLA:CPU both
    run forward + backward faster than lax.conv_transpose and than the single sub-pixel matmul this
    replaced (timings in benchmarks/results/cpu2-perf-2026-11-27.md).
    """
    b, h, wd, cin = x.shape
    cout = w.shape[-1]

    def taps(p, q):  # [2, 2, cin, cout]: the kernel of output phase (p, q)
        return jnp.stack([jnp.stack([w[3 - p - 2 * a, 3 - q - 2 * c] for c in range(2)]) for a in range(2)])

    if cout > 4:
        return _phase_convs(x, taps)
    # Grid row r holds phase p's output j = r - p; slot s = 1 - p puts it at row 2r + s of a grid cropped by one.
    # (Padding by jnp.pad here, not by the convolution: measured faster for these thin outputs.)
    k = jnp.concatenate([taps(1 - s, 1 - t) for s in range(2) for t in range(2)], axis=-1)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = jax.lax.conv_general_dilated(xp, k, (1, 1), "VALID", dimension_numbers=_DN)
    y = y.reshape(b, h + 1, wd + 1, 2, 2, cout)
    y = y.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h + 2, 2 * wd + 2, cout)
    return y[:, 1:-1, 1:-1]


@jax.custom_vjp
def conv_transpose_phases(x, w):
    """`_phases`, the fast transposed convolution, with a backward pass of two strided convolutions.

    A transposed convolution's input gradient is the strided convolution of the output gradient
    with the same kernel (in and out channels swapped), and its weight gradient is that strided
    convolution's weight gradient with x as the cotangent. Autodiff of the four phase convolutions
    instead runs four input gradients and four weight gradients, each weight gradient transposing
    its own padded copy of x: the CelebA beta-VAE step took 86 ms against 90-98 (same-process A/B).
    """
    return _phases(x, w)


def _phases_fwd(x, w):
    return _phases(x, w), (x, w)


def _phases_bwd(res, dy):
    x, w = materialised(res)
    down = _conv_down_s2d if dy.shape[-1] <= 4 else _conv_down
    dx, vjp = jax.vjp(lambda v: down(dy, v), jnp.swapaxes(w, 2, 3))
    (dv,) = vjp(x)
    return dx, jnp.swapaxes(dv, 2, 3)


conv_transpose_phases.defvjp(_phases_fwd, _phases_bwd)


def _conv_down(x, w):
    return jax.lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_DN)


@jax.custom_vjp
def conv_down(x, w):
    """Conv2d(kernel 4, stride 2, padding 1) on even sides; its input gradient in the phase form.

    The gradient of a strided convolution with respect to its input is the transposed convolution
    of the output gradient with the same kernel, in and out channels swapped. XLA:CPU computes it as
    an input-dilated convolution, slowly: forward + backward of 64x32x32x32 -> 16x16x32 took 41 ms
    against PyTorch's 15; with the phase form (`_phases`) for that gradient, 15 ms. Image inputs (at
    most 4 channels) take the space-to-depth form instead, forward and backward.
    """
    return _conv_down_s2d(x, w) if x.shape[-1] <= 4 else _conv_down(x, w)


def _conv_down_s2d(x, w):
    """`_conv_down` on even sides as space-to-depth and a 2x2 stride-1 convolution.

    Padded input row 2i + 2a + r (r in {0, 1}) meets kernel row 2a + r at output row i, so after
    folding each 2x2 block of the padded input into 4C channels the convolution is a 2x2 one over
    those. For thin inputs (images) XLA:CPU runs it much faster: 64x64x64x3 -> 32 forward + weight
    gradient 6.0 ms against 10.2 (64x32x32x3 -> 64: 2.2 against 2.9).
    """
    b, h, wd, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    xs = xp.reshape(b, h // 2 + 1, 2, wd // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
    k = w.reshape(2, 2, 2, 2, c, -1).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, -1)
    return jax.lax.conv_general_dilated(xs.reshape(b, h // 2 + 1, wd // 2 + 1, 4 * c), k, (1, 1), "VALID",
                                        dimension_numbers=_DN)


def _conv_down_fwd(x, w):
    return conv_down(x, w), (x, w)


def _conv_down_bwd(res, dy):
    x, w = materialised(res)
    if x.shape[-1] <= 4:  # image inputs: the space-to-depth form's own gradient
        return jax.vjp(_conv_down_s2d, x, w)[1](dy)
    w_t = jnp.swapaxes(w, 2, 3)  # [4, 4, out, in]: the transposed convolution back to x's channels
    (dw,) = jax.vjp(lambda w: _conv_down(x, w), w)[1](dy)
    return _phases(dy, w_t).astype(x.dtype), dw


conv_down.defvjp(_conv_down_fwd, _conv_down_bwd)


def upsample_conv3x3(x, kernel):
    """The SAME 3x3 convolution of upsample_nearest(x), computed on x itself, one phase at a time.

    Output row 2j + p of the upsampled-then-convolved image reads input rows j - 1 + p + a (a in {0, 1}):
    for p = 0 row j - 1 through kernel row 0 and row j through rows 1 + 2; for p = 1 row j through rows
    0 + 1 and row j + 1 through row 2 (the same per column). So each of the four output phases is a
    2x2 convolution of x with summed taps, padded by 1 - p before and p after: 16 multiply-adds per
    input pixel and channel pair where the upsampled 3x3 convolution does 36, and the 4x larger
    upsampled image is never written. (Written as `conv_transpose_phases` of a 4x4 kernel of summed
    taps it ran at the same speed, and its float32 rounding moved the DDPM twin's one-step parity
    test just past its 1e-4 bound, so autodiff of these four convolutions stays.)
    """
    groups = (((0,), (1, 2)), ((0, 1), (2,)))  # groups[p][a]: kernel rows summed into tap a of phase p

    def taps(p, q):
        rows = jnp.stack([sum(kernel[i] for i in g) for g in groups[p]])  # [2, 3, cin, cout]
        return jnp.stack([sum(rows[:, i] for i in g) for g in groups[q]], axis=1)  # [2, 2, cin, cout]
    return _phase_convs(x, taps)
