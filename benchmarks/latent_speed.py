"""The latent model's training step against the pixel model of the same width, side by side in one process:
images per second of jgen's compiled step at the same batch (issue 28's goal: at least 4x).

  python benchmarks/latent_speed.py          # ldm_mnist5k on 7x7x4 latents vs the same network on 28x28x1 digits
  python benchmarks/latent_speed.py --latent ldm_mnist5k --set model.arch=dit --set model.patch_size=1 \
      --pixel dit_mnist5k                    # a latent DiT (one token per latent pixel) vs dit_mnist5k

The latent step is timed on random latents of the autoencoder recipe's shape (no checkpoint needed); the
encoder is not in it, as it is not in a latent run's step (latents are cached once).
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def step_seconds(config, batch: int) -> float:
    import jax
    import jax.numpy as jnp

    from benchmarks.timing import timed
    from jgen.families import get_family
    from jgen.sharding import make_mesh
    from jgen.train.step import init_state, jit_train_step

    family, mesh = get_family(config.family), make_mesh()
    state = init_state(family, config, jax.random.PRNGKey(0))
    s, c = config.data.image_size, config.data.channels
    data = {"image": jax.random.normal(jax.random.PRNGKey(1), (batch, s, s, c)).clip(-1, 1),
            "label": jnp.zeros((batch,), jnp.int32), "index": jnp.arange(batch, dtype=jnp.int32)}
    step = jit_train_step(family, config, mesh)
    holder = [state]

    def run():
        holder[0], metrics = step(holder[0], data)
        return metrics
    return timed(run, repeats=5, inner=5)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pixel", default="", help="the pixel recipe (default: the latent recipe's own network and "
                   "settings on the autoencoder's images)")
    p.add_argument("--latent", default="ldm_mnist5k")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE override of the latent recipe")
    p.add_argument("--autoencoder", default="ae_mnist5k")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    from jgen import host

    host.configure()
    from benchmarks.timing import write_results
    from jgen.config import apply_overrides, load_config
    from jgen.latent import planned_config

    batch = [f"train.batch_size={a.batch}"]
    ae = load_config(a.autoencoder)
    latent = planned_config(apply_overrides(load_config(a.latent), batch + a.set), ae)
    names = {"latent": a.latent, "pixel": a.pixel or f"{a.latent} on images"}
    if a.pixel:
        pixel = apply_overrides(load_config(a.pixel), batch)
    else:
        pixel = apply_overrides(load_config(a.latent), batch + a.set + [
            f"data.source={ae.data.source}", f"data.image_size={ae.data.image_size}", f"data.channels={ae.data.channels}"])
    rows = {}
    for name, config in (("pixel", pixel), ("latent", latent)):
        sec = step_seconds(config, a.batch)
        rows[name] = dict(recipe=names[name], shape=[config.data.image_size] * 2 + [config.data.channels],
                          seconds_per_step=sec, images_per_sec=a.batch / sec)
    rows["ratio"] = rows["latent"]["images_per_sec"] / rows["pixel"]["images_per_sec"]
    text = "\n".join(["| model | input | s / step | images / s |", "|---|---|---|---|"] + [
        f"| {r['recipe']} | {'x'.join(map(str, r['shape']))} | {r['seconds_per_step']:.4f} | {r['images_per_sec']:.1f} |"
        for r in (rows["pixel"], rows["latent"])] + [f"| latent / pixel | | | **{rows['ratio']:.2f}x** |"])
    heading = (f"Latent against pixel training step, batch {a.batch}, {os.cpu_count()} CPU cores, "
               f"{time.strftime('%Y-%m-%d')} (`python benchmarks/latent_speed.py`)")
    write_results(a.out, "latent-speed", heading, text, rows)


if __name__ == "__main__":
    main()
