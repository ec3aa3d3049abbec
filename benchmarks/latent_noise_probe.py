"""How tolerant an autoencoder's decoder is of errors in its latents: the error a latent generator makes.

  python benchmarks/latent_noise_probe.py AE_WORKDIR [--noise 0,0.05,0.1,0.2,0.4]

Encodes the 500 test digits (their posterior means), adds Gaussian noise of std s in the scaled units a
latent run trains in (data.latent_scale = 1 / std of the latents, Rombach et al. 2022 section 4.3.2),
decodes, and prints the PSNR against the digits for each s (jgen eval's: uint8 images, mean over images,
so s = 0 gives the PSNR `jgen eval` reports for the autoencoder), with the latents' per-channel means and
spreads and the posterior's median std in the same units. Used in
benchmarks/results/cpu2-latent-2026-12-07.md.
"""

import argparse

from jgen import host


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workdir")
    p.add_argument("--noise", default="0,0.05,0.1,0.2,0.4")
    args = p.parse_args()
    host.configure()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jgen import latent
    from jgen.eval.evaluate import REFERENCE_SEED, psnr_uint8, subset_images
    from jgen.images import from_uint8, to_uint8
    from jgen.sharding import make_mesh

    ae = latent.open_autoencoder(args.workdir, make_mesh())
    variables = jax.tree.map(lambda a: a.addressable_data(0), ae.variables)
    digits = subset_images(ae.config.data, "builtin:mnist5k:test", 500, seed=REFERENCE_SEED)
    x = from_uint8(digits)
    mean, logvar = (np.asarray(a) for a in jax.jit(lambda v: ae.family.encode(ae.config, variables, v))(x))
    scale = 1.0 / mean.std()
    print(f"scale {scale:.4f}; per channel, scaled: mean {np.round(mean.mean((0, 1, 2)) * scale, 2)}, "
          f"std {np.round(mean.std((0, 1, 2)) * scale, 2)}; posterior std (scaled), median "
          f"{np.median(np.exp(0.5 * logvar)) * scale:.4f}")
    decode = jax.jit(lambda z: ae.family.decode(ae.config, variables, z))
    for s in (float(v) for v in args.noise.split(",")):
        z = mean + np.random.default_rng(0).normal(0, s, mean.shape) / scale
        print(f"noise {s}: PSNR {psnr_uint8(digits, to_uint8(decode(jnp.asarray(z, jnp.float32)))):.1f} dB")


if __name__ == "__main__":
    main()
