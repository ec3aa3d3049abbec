"""Latent flow matching on the offline digits (Rombach et al. 2022: the autoencoder trained once, the
generator never sees pixels): the offline main job's process, labels and sampler (flow_mnist5k_cfg:
rectified flow, velocity target, logit-normal t, 10% null labels, Heun with 10 steps) on the 7 x 7 x 4
latents of configs/ae_mnist5k.py, with a U-Net of one 64-channel level and attention at 7 x 7. Train the
autoencoder first:

  jgen train --config configs/ae_mnist5k.py --workdir runs/ae_mnist5k
  jgen train --config configs/ldm_mnist5k.py --workdir runs/ldm_mnist5k

A DiT on the same latents (model.arch=dit model.patch_size=1, dit_mnist5k's width) also trains; on
2 CPU cores the U-Net's step is the cheaper one. Measured: docs/results.md, the latent rows.
"""

from jgen.configs import flow_mnist5k_cfg


def get_config():
    c = flow_mnist5k_cfg.get_config()
    c.data.source = "latents:runs/ae_mnist5k"
    c.model.update(ch=64, ch_mult=(1,), num_res_blocks=2, attn_resolutions=(7,))
    c.train.update(steps=12000, ckpt_every=4000)
    return c
