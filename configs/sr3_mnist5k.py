"""SR3 (Saharia et al. 2021) on the offline digits: 8x8 -> 32x32, the offline default's recipe otherwise.

The U-Net sees x_t concatenated with the bicubic upsampling of the 4x box-downsampled image. 10%
of the conditions are dropped (all zeros), so the run can also sample unconditionally, which is what
its training grid and `jgen eval` show; `jgen superres --workdir ... --image low.png` uses the condition.
"""

import os

from jgen.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddpm_mnist5k.py"))
    c.data.image_size = 32
    c.model.attn_resolutions = (8,)
    c.condition = dict(kind="lowres", scale=4, drop=0.1)
    return c
