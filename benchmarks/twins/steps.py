"""jgen's training steps written in PyTorch on the twin networks, for parity tests and benchmarks.

Each mirrors its jgen family step by step: the same losses, AdamW with linear warm-up and optional
global-norm clipping (jgen.train.step.make_optimizer), and the EMA rule min(decay, (1+k)/(10+k)).
The random draws (timesteps, noise, latents) are arguments so a test can feed jgen's; a benchmark
leaves them out and torch draws its own.
"""

import copy

import numpy as np
import torch
import torch.nn.functional as F


def make_optimizer(params, optim):
    """(AdamW, its warm-up scheduler) for a jgen optim config (lr, warmup_steps, b1, b2, eps, weight_decay)."""
    opt = torch.optim.AdamW(params, lr=optim.lr, betas=(optim.b1, optim.b2), eps=optim.eps,
                            weight_decay=optim.weight_decay)
    warmup = optim.warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, k / warmup) if warmup > 0 else 1.0)
    return opt, sched


def _apply(loss, params, opt, sched, clip):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    sched.step()


class EMA:
    """An exponential moving average of a module's parameters with jgen's warm-up rule."""

    def __init__(self, module, decay):
        self.module, self.decay, self.count = module, decay, 0
        self.copy = copy.deepcopy(module).requires_grad_(False)

    @torch.no_grad()
    def update(self):
        d = min(self.decay, (1.0 + self.count) / (10.0 + self.count))
        self.count += 1
        torch._foreach_lerp_(list(self.copy.parameters()), list(self.module.parameters()), 1.0 - d)


class DDPMStep:
    """L_simple on the U-Net twin; sqrt_ab / sqrt_1mab: the schedule's sqrt(abar_t), sqrt(1 - abar_t) [T]."""

    def __init__(self, unet, config, sqrt_ab, sqrt_1mab):
        self.unet, self.config = unet, config
        self.params = list(unet.parameters())
        self.opt, self.sched = make_optimizer(self.params, config.optim)
        self.ema = EMA(unet, config.optim.ema_decay)
        self.sqrt_ab, self.sqrt_1mab = (torch.tensor(np.array(a), dtype=torch.float32) for a in (sqrt_ab, sqrt_1mab))

    def __call__(self, x0, t=None, noise=None):
        if t is None:
            t = torch.randint(0, len(self.sqrt_ab), (x0.shape[0],))
            noise = torch.randn_like(x0)
        a, s = self.sqrt_ab[t][:, None, None, None], self.sqrt_1mab[t][:, None, None, None]
        prediction = self.config.diffusion.prediction
        target = {"eps": noise, "x0": x0, "v": a * noise - s * x0}[prediction]
        loss = F.mse_loss(self.unet(a * x0 + s * noise, t), target)
        _apply(loss, self.params, self.opt, self.sched, self.config.optim.grad_clip)
        self.ema.update()
        return loss


class DCGANStep:
    """pytorch/examples' DCGAN iteration (non-saturating loss, D then G on one fake batch), plus EMA of G."""

    def __init__(self, gen, disc, config):
        self.gen, self.disc, self.config = gen, disc, config
        self.opt_g = make_optimizer(list(gen.parameters()), config.optim.gen)
        self.opt_d = make_optimizer(list(disc.parameters()), config.optim.disc)
        self.ema = EMA(gen, config.optim.ema_decay)

    def __call__(self, real, z=None):
        if z is None:
            z = torch.randn(real.shape[0], self.config.model.latent_dim)
        fake = self.gen(z)
        out_real, out_fake = self.disc(real), self.disc(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
                  + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))
        _apply(d_loss, list(self.disc.parameters()), *self.opt_d, self.config.optim.disc.grad_clip)
        out = self.disc(fake)
        g_loss = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        _apply(g_loss, list(self.gen.parameters()), *self.opt_g, self.config.optim.gen.grad_clip)
        self.ema.update()
        return g_loss


class StyleGAN2Step:
    """jgen's StyleGAN2 step (jgen.families.gan with gan.arch=stylegan2) on the twin networks: z -> w (no
    mixing), fresh per-pixel noise, the non-saturating loss, D then G on one fake batch, R1 on the reals
    every gan.r1_interval steps times the interval, EMA of the mapping and synthesis networks."""

    def __init__(self, mapping, synthesis, disc, config):
        self.mapping, self.synthesis, self.disc, self.config = mapping, synthesis, disc, config
        self.g_params = list(mapping.parameters()) + list(synthesis.parameters())
        self.opt_g = make_optimizer(self.g_params, config.optim.gen)
        self.opt_d = make_optimizer(list(disc.parameters()), config.optim.disc)
        self.ema = EMA(torch.nn.ModuleList([mapping, synthesis]), config.optim.ema_decay)
        self.count = 0

    def generate(self, n):
        w = self.mapping(torch.randn(n, self.config.model.latent_dim))
        sides = self.synthesis.sides
        noises = [torch.randn(n, 1, 4, 4)] + [torch.randn(n, 1, s, s) for s in sides[1:] for _ in range(2)]
        return self.synthesis(w[:, None].expand(n, 2 * len(sides), w.shape[1]), noises)

    def __call__(self, real):
        g = self.config.gan
        fake = self.generate(real.shape[0])
        d_loss = F.softplus(-self.disc(real)).mean() + F.softplus(self.disc(fake.detach())).mean()
        if g.r1_gamma > 0 and self.count % g.r1_interval == 0:
            x = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.disc(x).sum(), x, create_graph=True)
            d_loss = d_loss + g.r1_gamma / 2 * g.r1_interval * grad.square().sum(dim=[1, 2, 3]).mean()
        _apply(d_loss, list(self.disc.parameters()), *self.opt_d, 0.0)
        g_loss = F.softplus(-self.disc(fake)).mean()
        _apply(g_loss, self.g_params, *self.opt_g, 0.0)
        self.ema.update()
        self.count += 1
        return g_loss


class VAEStep:
    """The beta / capacity objective with a Bernoulli or fixed-sigma Gaussian likelihood, nats per image."""

    def __init__(self, encoder, decoder, config):
        if config.vae.likelihood == "gaussian_learned":
            raise NotImplementedError("the twin has no learned sigma")
        self.encoder, self.decoder, self.config = encoder, decoder, config
        self.params = list(encoder.parameters()) + list(decoder.parameters())
        self.opt, self.sched = make_optimizer(self.params, config.optim)
        self.count = 0

    def __call__(self, x, eps=None):
        v = self.config.vae
        mean, logvar = self.encoder(x)
        if eps is None:
            eps = torch.randn_like(mean)
        out = self.decoder(mean + torch.exp(0.5 * logvar) * eps)
        if v.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(out, (x + 1) / 2, reduction="sum") / x.shape[0]
        else:
            nll = (0.5 * ((x - out) / v.sigma) ** 2).sum() / x.shape[0] + x[0].numel() * (
                torch.log(torch.tensor(v.sigma)) + 0.5 * torch.log(torch.tensor(2 * torch.pi)))
        kl = (0.5 * (mean ** 2 + logvar.exp() - 1 - logvar)).sum() / x.shape[0]
        if v.objective == "beta":
            loss = nll + v.beta * kl
        else:
            loss = nll + v.gamma * (kl - v.capacity_max * min(1.0, self.count / max(v.capacity_steps, 1))).abs()
        _apply(loss, self.params, self.opt, self.sched, self.config.optim.grad_clip)
        self.count += 1
        return loss


@torch.no_grad()
def ddim_sample(unet, alphas_cumprod, shape, timesteps, prediction, clip=True):
    """Deterministic DDIM (eta 0) over the ascending `timesteps` grid, as jgen.diffusion.samplers does it."""
    abar = torch.as_tensor(alphas_cumprod, dtype=torch.float32)
    x = torch.randn(shape)
    ts = list(timesteps)[::-1]
    for i, t in enumerate(ts):
        a_t = abar[t]
        a_prev = abar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        out = unet(x, torch.full((shape[0],), t, dtype=torch.long))
        if prediction == "eps":
            x0, eps = (x - (1 - a_t).sqrt() * out) / a_t.sqrt(), out
        elif prediction == "v":
            x0, eps = a_t.sqrt() * x - (1 - a_t).sqrt() * out, (1 - a_t).sqrt() * x + a_t.sqrt() * out
        else:
            x0, eps = out, (x - a_t.sqrt() * out) / (1 - a_t).sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x
