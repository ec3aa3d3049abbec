"""Latent flow matching on the offline digits (Rombach et al. 2022's recipe with a DiT, as diffuse_nnx trains
SiT): flow_mnist5k's process (velocity target, logit-normal t, Heun on a uniform grid) and dit_mnist5k's
width (128, 6 adaLN-Zero blocks of 4 heads) on the 7 x 7 x 4 latents of configs/ae_mnist5k.py, one token
per latent pixel (49 tokens; the pixel DiT has 196). Train the autoencoder first:

  jgen train --config configs/ae_mnist5k.py --workdir runs/ae_mnist5k
  jgen train --config configs/ldm_mnist5k.py --workdir runs/ldm_mnist5k
"""

from jgen.configs import dit_mnist5k


def get_config():
    c = dit_mnist5k.get_config()
    c.data.source = "latents:runs/ae_mnist5k"
    c.model.update(patch_size=1)
    c.train.update(steps=8000, batch_size=16, ckpt_every=2000)
    return c
