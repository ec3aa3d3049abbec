"""The KL autoencoder on the offline digits, f = 4 (28 x 28 x 1 -> 7 x 7 x 4; Rombach et al. 2022's KL-f4
at the digits' scale): L1 reconstruction, KL weight 1e-6, the patch discriminator from step 1,000 with
the adaptive weight. Its latents feed configs/ldm_mnist5k.py (data.source=latents:runs/ae_mnist5k)."""

from jgen.configs import base


def get_config():
    c = base.get_config("autoencoder")
    c.train.update(steps=2000, batch_size=32, log_every=100, sample_every=0, ckpt_every=1000)
    c.ae.update(disc_start=1000)
    return c
