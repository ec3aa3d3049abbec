"""Per-device state bytes of the compiled train step, train.param_sharding=replicated against fsdp, on
8 devices (fake CPU devices unless a machine has 8): XLA's own `memory_analysis()` of each compiled
step, so the figures are what the step's arguments occupy on one device, not an estimate.

  python benchmarks/fsdp_memory.py                      # the CIFAR-10 U-Net (35.7M parameters)
  python benchmarks/fsdp_memory.py --config ddpm_mnist5k --set model.ch=8 --json   # (tests use this)
  python benchmarks/fsdp_memory.py --config ldm_lsun256 --estimate   # + FLOPs and pod hours (an estimate)

A latent recipe (data.source=latents:runs/ae_X) is measured on the latents of the ae_X recipe (or
--autoencoder RECIPE), without a checkpoint. --estimate adds XLA's FLOP count of the step (cost_analysis
of the replicated step, per device, times the devices) and what train.steps of it would take on a pod at
an assumed MFU: an estimate on paper, not a measurement.
"""

PEAK = {"8x H100 (bf16 dense 989 TFLOP/s each)": 8 * 989e12, "TPU v5p-8 (4 chips, bf16 459 TFLOP/s each)": 4 * 459e12}

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
if "jax" not in sys.modules and "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()


def argument_bytes(config) -> dict:
    """{'argument_bytes', 'sharded_leaves', 'leaves'} of the compiled step under config's param_sharding."""
    import jax

    from jgen.families import get_family
    from jgen.sharding import batch_sharding, make_mesh, state_sharding
    from jgen.train.step import jit_train_step, state_shapes

    family, mesh = get_family(config.family), make_mesh()
    shapes = state_shapes(family, config)
    shardings = state_sharding(shapes, mesh, config.train)
    state = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
    b, s, c = config.train.batch_size, config.data.image_size, config.data.channels
    batch = {"image": jax.ShapeDtypeStruct((b, s, s, c), jax.numpy.uint8, sharding=batch_sharding(mesh)),
             "label": jax.ShapeDtypeStruct((b,), jax.numpy.int32, sharding=batch_sharding(mesh)),
             "index": jax.ShapeDtypeStruct((b,), jax.numpy.int32, sharding=batch_sharding(mesh))}
    compiled = jit_train_step(family, config, mesh).lower(state, batch).compile()
    leaves = jax.tree.leaves(shardings)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return dict(argument_bytes=compiled.memory_analysis().argument_size_in_bytes,
                flops_per_device=float(cost.get("flops", 0.0)),
                sharded_leaves=sum(not sh.is_fully_replicated for sh in leaves), leaves=len(leaves),
                devices=mesh.devices.size)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="ddpm_cifar10")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print one JSON line, write nothing")
    p.add_argument("--autoencoder", default="", help="a latent recipe's autoencoder recipe (default: ae_X of "
                   "latents:runs/ae_X)")
    p.add_argument("--estimate", action="store_true", help="add FLOPs per step and pod hours (assumed MFU)")
    p.add_argument("--mfu", type=float, default=0.4)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    from jgen import host

    host.configure()
    from jgen.config import apply_overrides, load_config

    from jgen import latent

    rows = {}
    for mode in ("replicated", "fsdp"):
        config = apply_overrides(load_config(a.config), a.set + [f"train.param_sharding={mode}"])
        if latent.is_latent(config):
            ae = a.autoencoder or os.path.basename(latent.parse(config.data.source)[0])
            config = latent.planned_config(config, load_config(ae))
        rows[mode] = argument_bytes(config)
    rows["ratio"] = rows["fsdp"]["argument_bytes"] / rows["replicated"]["argument_bytes"]
    if a.json:
        print(json.dumps(rows))
        return
    from benchmarks.timing import write_results

    r, f = rows["replicated"], rows["fsdp"]
    text = "\n".join([
        "| param_sharding | argument MiB per device | leaves split over `data` |", "|---|---|---|",
        f"| replicated | {r['argument_bytes'] / 2 ** 20:.1f} | 0 of {r['leaves']} |",
        f"| fsdp | {f['argument_bytes'] / 2 ** 20:.1f} | {f['sharded_leaves']} of {f['leaves']} |",
        f"| fsdp / replicated | {rows['ratio']:.3f} | (1/{f['devices']} = {1 / f['devices']:.3f}) |"])
    if a.estimate:
        flops = rows["replicated"]["flops_per_device"] * f["devices"]
        steps = config.train.steps
        rows["estimate"] = dict(flops_per_step=flops, steps=steps, mfu=a.mfu, hours={
            name: steps * flops / (peak * a.mfu) / 3600 for name, peak in PEAK.items()})
        text += (f"\n\nEstimate (XLA cost analysis, not measured): {flops / 1e12:.2f} TFLOP per step of batch "
                 f"{config.train.batch_size}; train.steps={steps:,} at {a.mfu:.0%} MFU: " + "; ".join(
                     f"{h:.1f} h on {name}" for name, h in rows["estimate"]["hours"].items()))
        print(text.split("\n\n")[-1])
    heading = (f"Train-step state per device, {a.config} {' '.join(a.set)}, {f['devices']} devices, "
               f"XLA memory_analysis, {time.strftime('%Y-%m-%d')} (`python benchmarks/fsdp_memory.py`)")
    write_results(a.out, "fsdp-memory" if a.config == "ddpm_cifar10" else f"fsdp-memory-{a.config}", heading, text, rows)


if __name__ == "__main__":
    main()
