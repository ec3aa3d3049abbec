"""SR3 (Saharia et al. 2021) on the offline digits: 8x8 -> 32x32, the offline default's recipe otherwise.

The U-Net sees x_t concatenated with the bicubic upsampling of the 4x box-downsampled image. 10%
of the conditions are dropped (all zeros), so the run can also sample unconditionally, which is what
its training grid and `jgen eval` show; `jgen superres --workdir ... --image low.png` uses the condition.
"""

from jgen.configs import ddpm_mnist5k


def get_config():
    c = ddpm_mnist5k.get_config()
    c.data.image_size = 32
    c.model.attn_resolutions = (8,)
    c.condition.update(kind="lowres", scale=4, drop=0.1)
    return c
