"""DDPM on CIFAR-10 as in Ho et al. 2020 (35.7M-parameter U-Net, T=1000, 800k steps, FID 3.17)."""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.family = "diffusion"
    c.seed = 0
    c.data = dict(source="tfds:cifar10:train", data_dir="", image_size=32, channels=3, crop=0,
                  random_flip=True, shuffle_buffer=50_000)
    c.model = dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                   dropout=0.1, num_groups=32)
    c.diffusion = dict(timesteps=1000, schedule="linear", beta_start=1e-4, beta_end=0.02, prediction="eps")
    c.optim = dict(lr=2e-4, warmup_steps=5000, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                   grad_clip=1.0, ema_decay=0.9999)
    c.train = dict(steps=800_000, batch_size=128, log_every=100, sample_every=10_000,
                   ckpt_every=10_000, keep_checkpoints=3,
                   compute_dtype="float32", grad_accum=1, max_nonfinite=10)
    c.sample = dict(sampler="ddim", steps=100, eta=0.0, variance="small", clip=True, num=64)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/
    c.eval = dict(every=0, num=10000, metrics="fid,is", extractor="inception", split="test", batch=250,
                  classifier="", inception="", cache_dir="")
    return ml_collections.ConfigDict(c)
