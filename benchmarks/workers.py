"""One measurement of benchmarks/run.py, alone in its process: one family, one framework, one variant.

jgen runs the trainer's jitted `train_step` (state donated, as the trainer does) and the family's `sample`;
PyTorch runs the twins (benchmarks/twins) with the same networks, losses and optimiser, eager or
under torch.compile. Both train on one fixed random batch, so no input pipeline is timed, except in jgen's
`loop` variant, which runs the real `jgen.run.train` on the offline digits resized to the recipe's shape.
Prints one line `RESULT {json}`: train and sampling images/s (medians of timed windows after a
warm-up), the first step's seconds (tracing and compiling included) and peak memory of the timed
training steps: on CPU the resident high-water mark, restarted after the first step (so compiling
is not counted), less the resident size before the model was built; on GPU the allocators' peaks.

python -m benchmarks.workers --framework jgen --variant float32 --config ddpm_mnist5k --batch 16
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.timing import timed  # noqa: E402
from jgen.config import apply_overrides, load_config  # noqa: E402

SAMPLE_STEPS = 50  # DDIM steps of the DDPM sampling figure

# Dense peak TFLOP/s by device kind prefix: (bfloat16, float32 at matmul precision highest). Vendor
# figures without sparsity: NVIDIA H100 SXM / H200 datasheets (bf16 989, FP32 67), A100 SXM (bf16 312,
# FP32 19.5); Google Cloud TPU pages (v4 275, v5e 197, v5p 459, v6e 918 bf16 per chip; a TPU's float32
# at HIGHEST is several bf16 passes and has no published peak, so MFU is given for bf16 there only).
PEAK_TFLOPS = {"NVIDIA H200": (989.0, 67.0), "NVIDIA H100": (989.0, 67.0), "NVIDIA A100": (312.0, 19.5),
               "TPU v4": (275.0, None), "TPU v5 lite": (197.0, None), "TPU v5e": (197.0, None),
               "TPU v5p": (459.0, None), "TPU v5": (459.0, None), "TPU v6": (918.0, None)}


def peak_flops(device_kind: str, variant: str):
    """The device's dense peak FLOP/s for the variant's compute dtype, or None (CPUs, unknown chips)."""
    for prefix, (bf16, f32) in PEAK_TFLOPS.items():
        if device_kind.startswith(prefix):
            peak = bf16 if variant == "bfloat16" else f32
            return peak * 1e12 if peak else None
    return None


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def reset_peak():
    """Restarts the kernel's resident high-water mark at the current size (Linux clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024  # kB


def first_and_timed(fn, arg, sync, repeats, inner, after_first=lambda: None):
    """(seconds of the first call, median seconds per call afterwards)."""
    t0 = time.perf_counter()
    out = fn(arg)
    sync(out)
    first = time.perf_counter() - t0
    after_first()
    return first, timed(fn, arg, repeats=repeats, inner=inner, sync=sync)


def jgen_loop_worker(config, batch, gpu, steps: int = 240, window: int = 40):
    """train images/s of the real `jgen.run.train` path (input pipeline, prefetch thread, uint8 batches
    normalised on the device, logging, non-finite bookkeeping, a checkpoint at the end) on the offline
    digits resized to the recipe's shape, from its own log windows after the first (which compiles)."""
    import tempfile

    from jgen import host

    host.configure()
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", True)  # the host may run ahead, as on accelerators
    from jgen.run import train

    with tempfile.TemporaryDirectory() as workdir:
        config = apply_overrides(config, [f"train.batch_size={batch}", f"train.steps={steps}",
                                          f"train.log_every={window}", "train.sample_every=0",
                                          f"train.ckpt_every={steps}", "sample.num=4", "eval.every=0",
                                          "data.source=builtin:mnist5k:train", "condition.kind=none"])
        train(config, workdir)
        rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    rates = sorted(r["steps_per_sec"] for r in rows[1:])
    return dict(train_img_s=batch * rates[len(rates) // 2], device=jax.devices()[0].device_kind)


def jgen_worker(config, batch, variant, gpu, repeats):
    if variant == "loop":
        return jgen_loop_worker(config, batch, gpu)
    from jgen import host

    host.configure()  # what the `jgen` command applies first (CPU only)
    import jax
    from functools import partial

    from jgen.families import get_family
    from jgen.run import Run
    from jgen.sharding import make_mesh
    from jgen.train.step import init_state, train_step

    family = get_family(config.family)
    if variant == "bfloat16":
        config = apply_overrides(config, ["train.compute_dtype=bfloat16"])
    s, c = config.data.image_size, config.data.channels
    images = {"image": jax.random.uniform(jax.random.PRNGKey(1), (batch, s, s, c), minval=-1.0, maxval=1.0)}
    state = jax.block_until_ready(init_state(family, config, jax.random.PRNGKey(0)))
    base = rss_mib()
    step = jax.jit(partial(train_step, family, config), donate_argnums=0)
    holder = [state]

    def train(_):
        holder[0], metrics = step(holder[0], images)
        return metrics

    first, per_step = first_and_timed(train, None, jax.block_until_ready, repeats, 5, reset_peak)
    peak = peak_rss_mib() - base
    cost = step.lower(holder[0], images).compile().cost_analysis()  # XLA's count of the step's FLOPs
    flops = (cost[0] if isinstance(cost, list) else cost or {}).get("flops", 0.0)
    run = Run(config, family, holder[0], make_mesh(), "")
    sample = run.sampler(batch)  # the sampler every `jgen` command uses
    _, per_sample = first_and_timed(lambda k: sample(k), jax.random.PRNGKey(2),
                                    jax.block_until_ready, max(repeats // 2, 2), 1)
    device = jax.devices()[0]
    stats = device.memory_stats() or {}  # None on some backends
    if gpu and "peak_bytes_in_use" in stats:
        peak = stats["peak_bytes_in_use"] / 2 ** 20
    device_peak = peak_flops(device.device_kind, variant)
    mfu = flops / per_step / device_peak if device_peak and flops else None
    return dict(first_step_s=first, train_img_s=batch / per_step, sample_img_s=batch / per_sample, peak_mib=peak,
                step_gflop=flops / 1e9, mfu=mfu, device=device.device_kind)


def torch_worker(config, batch, variant, gpu, repeats):
    import numpy as np
    import torch

    from benchmarks.twins import dcgan_torch, dit_torch, steps, stylegan2_torch, unet_torch, vae_torch
    from jgen.diffusion.samplers import ddim_timesteps
    from jgen.diffusion.schedules import cosine_betas, linear_betas

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    dev = torch.device("cuda" if gpu else "cpu")
    torch.set_default_device(dev)
    wrap = torch.compile if variant == "compile" else (lambda m: m)
    s, c, m = config.data.image_size, config.data.channels, config.model
    x = torch.rand(batch, c, s, s) * 2 - 1
    if config.family == "diffusion":
        if m.arch == "dit":
            net = dit_torch.init_like_jgen(dit_torch.TorchDiT(c, s, m.patch_size, m.hidden, m.depth, m.heads,
                                                              m.mlp_ratio, out_ch=c))
        else:
            net = unet_torch.init_like_jgen(unet_torch.TorchUNet(
                c, s, m.ch, tuple(m.ch_mult), m.num_res_blocks, tuple(m.attn_resolutions), m.dropout, m.num_groups))
        d = config.diffusion
        betas = (linear_betas(d.timesteps, d.beta_start, d.beta_end) if d.schedule == "linear"
                 else cosine_betas(d.timesteps))
        abar = np.cumprod(1 - betas)
        step = steps.DDPMStep(net, config, np.sqrt(abar), np.sqrt(1 - abar))
        step.unet = wrap(net)
        grid = ddim_timesteps(d.timesteps, config.sample.steps)

        def sample(_):
            return steps.ddim_sample(step.unet, abar, (batch, c, s, s), grid, d.prediction)
    elif config.family == "gan" and config.gan.arch == "stylegan2":
        widths = dict(channel_base=m.channel_base, channel_max=m.channel_max)
        mapping = stylegan2_torch.Mapping(m.latent_dim, m.w_dim, m.mapping_layers, m.mapping_lr)
        synthesis = stylegan2_torch.Synthesis(s, c, m.w_dim, **widths)
        step = steps.StyleGAN2Step(mapping, synthesis, wrap(stylegan2_torch.Discriminator(
            s, c, mbstd_group=m.mbstd_group, **widths)), config)

        def sample(_):
            with torch.no_grad():
                return step.generate(batch)
    elif config.family == "gan":
        gen, disc = dcgan_torch.TorchGenerator(s, c, m.latent_dim, m.ngf), dcgan_torch.TorchDiscriminator(s, c, m.ndf)
        step = steps.DCGANStep(gen, disc, config)
        step.gen, step.disc = wrap(gen), wrap(disc)

        def sample(_):
            with torch.no_grad():
                step.gen.eval()
                out = step.gen(torch.randn(batch, m.latent_dim))
                step.gen.train()
                return out
    else:
        enc, dec = vae_torch.TorchEncoder(s, c, m.latent_dim), vae_torch.TorchDecoder(s, c, m.latent_dim)
        step = steps.VAEStep(enc, dec, config)
        step.encoder, step.decoder = wrap(enc), wrap(dec)

        def sample(_):
            with torch.no_grad():
                return torch.sigmoid(step.decoder(torch.randn(batch, m.latent_dim)))
    base = rss_mib()
    if gpu:
        torch.cuda.reset_peak_memory_stats()

    def sync(out):
        if gpu:
            torch.cuda.synchronize()
        return out

    first, per_step = first_and_timed(lambda _: step(x), None, sync, repeats, 5, reset_peak)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if gpu else peak_rss_mib() - base
    _, per_sample = first_and_timed(sample, None, sync, max(repeats // 2, 2), 1)
    return dict(first_step_s=first, train_img_s=batch / per_step, sample_img_s=batch / per_sample, peak_mib=peak,
                device=torch.cuda.get_device_name() if gpu else "cpu")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", choices=("jgen", "torch"), required=True)
    p.add_argument("--variant", required=True, help="jgen: float32 | bfloat16 | loop (the real train loop, "
                   "float32); torch: eager | compile")
    p.add_argument("--config", required=True, help="a packaged recipe name (jgen/configs/)")
    p.add_argument("--set", action="append", default=[], help="config override")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    config = apply_overrides(load_config(a.config),  # --set sample.steps=N after these changes the DDIM grid
                             [f"sample.steps={SAMPLE_STEPS}", "sample.eta=0.0", "sample.sampler=ddim"] + a.set
                             if a.config.startswith("ddpm") else a.set)
    worker = jgen_worker if a.framework == "jgen" else torch_worker
    result = worker(config, a.batch, a.variant, a.gpu, a.repeats)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
