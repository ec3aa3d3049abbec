"""Latent flow matching on the offline digits (Rombach et al. 2022: the autoencoder trained once, the
generator never sees pixels): the offline main job's process, labels and sampler (flow_mnist5k_cfg:
rectified flow, velocity target, logit-normal t, 10% null labels, Heun with 10 steps) on the 7 x 7 x 4
latents of configs/ae_mnist5k.py, with a U-Net of one 64-channel level and attention at 7 x 7, 16,000
steps, sampled at classifier-free guidance 1.5. Train the autoencoder first:

  jgen train --config configs/ae_mnist5k.py --workdir runs/ae_mnist5k
  jgen train --config configs/ldm_mnist5k.py --workdir runs/ldm_mnist5k

Measured with benchmarks/recipes.py on 2 cores (2026-12-07; FID on classifier features over 1,000
samples, floor 17.7): 1.20x and 1.26x the floor on seeds 0 and 1 (0.977 and 0.983 called), in 195 + 736
and 192 + 736 s of autoencoder and generator training. Guidance 1.5 was the best of 1.0, 1.5 and 2.0
(seed 0: 1.32x, 1.20x, 1.73x); the pixel main job's best was 1.0. On the earlier, weaker autoencoder
(rate 2e-4, 4,000 steps) guidance 1.5 took the same model from 2.06x to 1.30x, and 24,000 steps with a
cosine rate did not improve on it (1.31x); the better decoder (configs/ae_mnist5k.py) then gave 1.20x.

A DiT on the same latents (model.arch=dit model.patch_size=1, dit_mnist5k's width) also trains; on
2 CPU cores the U-Net's step is the cheaper one. Measured: docs/results.md, the latent rows.
"""

from jgen.configs import flow_mnist5k_cfg


def get_config():
    c = flow_mnist5k_cfg.get_config()
    c.data.source = "latents:runs/ae_mnist5k"
    c.model.update(ch=64, ch_mult=(1,), num_res_blocks=2, attn_resolutions=(7,))
    c.sample.guidance = 1.5
    c.train.update(steps=16000, ckpt_every=4000)
    return c
