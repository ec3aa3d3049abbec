"""Every section and every default of a jgen config, per family: recipes start here and change keys.

The defaults are each method as its paper states it, at the size of the offline data
(builtin:mnist5k, 28x28 grey digits, no download): `get_config(family)` trains as is on a CPU.
Every default has the type an override must have (`--set optim.lr=1` is read as 1.0, because the
default is a float), so ints stay ints, floats floats and tuples tuples. `jgen.config.check` states
which values each key accepts.

Imports nothing from jgen but its errors: `jgen.config` (the ground floor) imports this module.
"""

import ml_collections

from jgen.errors import JgenError

FAMILIES = ("diffusion", "gan", "vae", "autoencoder")


def get_config(family: str) -> ml_collections.ConfigDict:
    """The full default config of `family` (diffusion | gan | vae | autoencoder)."""
    if family not in FAMILIES:
        raise JgenError(f"unknown family '{family}' (known: {', '.join(FAMILIES)})")
    c = _shared(family)
    {"diffusion": _diffusion, "gan": _gan, "vae": _vae, "autoencoder": _autoencoder}[family](c)
    return c


def _shared(family: str) -> ml_collections.ConfigDict:
    """The sections every family has: family, seed, data, train, eval, condition, sample."""
    c = ml_collections.ConfigDict()
    c.family = family
    c.seed = 0  # parameters, noise and data order all derive from it
    # source: builtin:mnist5k[:SPLIT] | tfds:NAME[:SPLIT] | folder:PATH | latents:AE_WORKDIR[:SPLIT] (the images
    # of that autoencoder run's data, encoded once by it and cached on this host in latent_cache, "" =
    # ~/.cache/jgen/latents; image_size and channels then become the latents' and latent_scale their
    # measured 1 / std, both recorded when the run starts: jgen.latent); data_dir: TFDS's data directory
    # ("" = its default); crop: side of the centre square cut before resizing to image_size (0 = the
    # shorter side); channels: 1 (grey) or 3 (RGB), converted on load. Each epoch is a full permutation of
    # the source drawn from `seed` (jgen.data.pipeline), so there is no shuffle buffer to size. cache: decode
    # and resize the whole source once into memory before training (refused when it would not fit)
    c.data = dict(source="builtin:mnist5k:train", data_dir="", image_size=28, channels=1, crop=0,
                  random_flip=False, cache=False, latent_cache="", latent_scale=0.0, latent_ae="")
    # batch_size: the global batch (all devices, all micro-batches); sample_every: a sample grid every
    # that many steps (0 = none); compute_dtype: float32 | bfloat16 (activations; params stay float32);
    # matmul_precision: highest | high | default, the precision of every matmul and convolution of the
    # step and the samplers: highest keeps float32 float32 on GPUs (no TF32) and TPUs (no one-pass
    # bfloat16); default lets the backend choose, the faster path; grad_accum: micro-batches per step;
    # max_nonfinite: NaN/inf steps in a row (each skipped) before the run stops; param_sharding:
    # replicated (every device holds the whole state) | fsdp (parameters, EMA and optimiser state split
    # over the devices, leaves of at least fsdp_min_size elements, for states beyond one device's memory)
    c.train = dict(steps=3000, batch_size=64, log_every=100, sample_every=1000,
                   ckpt_every=1000, keep_checkpoints=2, compute_dtype="float32", matmul_precision="highest",
                   grad_accum=1, max_nonfinite=10, param_sharding="replicated", fsdp_min_size=2 ** 14)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/;
    # num: generated images per evaluation; metrics: comma list of fid, kid, is, pr; extractor:
    # inception (pytorch-fid's Inception-v3) | classifier (trained by `jgen train-classifier`);
    # split: the real images compared against; classifier, inception, cache_dir: paths ("" = default)
    c.eval = dict(every=0, num=1000, metrics="fid,kid,pr", extractor="classifier", split="test", batch=250,
                  classifier="", inception="", cache_dir="")
    # kind: none | class (classifier-free guidance, Ho & Salimans 2022) | lowres (SR3, Saharia et al.
    # 2021); conditioning is for the diffusion family only. drop: fraction of training examples whose
    # condition is replaced by the null one (label num_classes, or an all-zero image), which teaches
    # the unconditional model too; scale: the low-resolution input is image_size / scale px
    c.condition = dict(kind="none", num_classes=10, drop=0.1, scale=4)
    c.sample = dict(num=64)  # images in the training sample grid
    return c


def _diffusion(c: ml_collections.ConfigDict) -> None:
    """DDPM (Ho et al. 2020): its schedule, loss and optimiser; a narrow U-Net for 28 px."""
    # The U-Net: level widths ch * ch_mult[i], num_res_blocks per level, the side halving between
    # levels; attention at the sides listed in attn_resolutions (and always in the middle)
    # arch: unet | dit (Peebles & Xie 2023: patch_size, hidden width, depth, heads, mlp_ratio; DiT-S/B/L/XL
    # are depth/hidden/heads 12/384/6, 12/768/12, 24/1024/16, 28/1152/16, jgen.nn.dit.SIZES)
    c.model = dict(arch="unet", ch=16, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=(7,),
                   dropout=0.0, num_groups=8, patch_size=2, hidden=384, depth=12, heads=6, mlp_ratio=4.0)
    # schedule: linear (beta_start..beta_end) | cosine (Nichol & Dhariwal 2021); prediction: what the
    # network outputs: eps (noise) | x0 (the clean image) | v (Salimans & Ho 2022); loss_weight: none
    # (L_simple) | min_snr (Hang et al. 2023: each timestep's loss weighted as min(SNR, min_snr_gamma) times
    # the x0 error, which caps the weight of the easy low-noise steps)
    # process (jgen.diffusion.process): discrete (DDPM's T levels) | vp (the same schedule in continuous t,
    # beta(t) = T beta_t) | edm (alpha = 1, the level is sigma; Karras et al. 2022) | flow (alpha = 1 - t,
    # sigma = t; rectified flow, SiT). prediction also: velocity (dx/dt; flow's eps - x0, continuous
    # processes) | F (EDM's preconditioned output, process=edm; sigma_data). t_min: the lowest t of vp
    # (training and sampling) and flow's non-uniform grids. time_sampling: uniform | logit_normal (t =
    # sigmoid(logit_mean + logit_std z), Esser et al. 2024) | lognormal (EDM's ln sigma ~ N(p_mean, p_std));
    # loss_weight also: edm (lambda(sigma), Karras et al. eq. 8) | sigmoid (w = sigmoid(sigmoid_bias -
    # lambda)) | elbo (Kingma & Gao 2023, each divided by the density of lambda under time_sampling)
    c.diffusion = dict(process="discrete", timesteps=1000, schedule="linear", beta_start=1e-4, beta_end=0.02,
                       prediction="eps", loss_weight="none", min_snr_gamma=5.0, sigma_min=0.002,
                       sigma_max=80.0, sigma_data=0.5, t_min=1e-3, time_sampling="uniform", logit_mean=0.0,
                       logit_std=1.0, p_mean=-1.2, p_std=1.2, sigmoid_bias=0.0)
    # AdamW with linear warm-up over warmup_steps, then a constant rate (decay=none) or a cosine down to
    # 0 at train.steps (decay=cosine); grad_clip: global-norm clipping (0 = none);
    # ema_decay: the EMA of the parameters that sampling uses (0 = none)
    c.optim = dict(lr=2e-4, warmup_steps=5000, decay="none", b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                   grad_clip=1.0, ema_decay=0.9999)
    # sampler: ddpm (ancestral, all timesteps) | ddim (steps evenly spaced levels; eta 0 is
    # deterministic, 1 as noisy as DDPM) | heun (EDM's second-order ODE solver, 2 * steps - 1 model
    # calls) | dpmpp2m (DPM-Solver++(2M), second order, `steps` calls on a log-SNR grid); variance: small (posterior) | large (beta_t); clip: x0 to
    # [-1, 1] at each step, and the samples (off for latent runs: their unit-variance latents reach +-4); guidance: the classifier-free scale of a condition.kind=class run (1 = none)
    # euler (DDIM with eta 0) | sde (Euler-Maruyama on the reverse SDE, SiT; continuous processes);
    # grid: default (EDM's rho = 7 grid for edm, even log-SNR for dpmpp2m, uniform in t otherwise) |
    # uniform | logsnr | karras, for continuous processes; churn, s_noise: EDM Algorithm 2's S_churn and
    # S_noise for heun (0 = Algorithm 1); churn_tmin, churn_tmax: its S_tmin and S_tmax, the range of
    # sigma / alpha whose steps churn (EDM's tuned ImageNet values 0.05 and 50; default everywhere)
    c.sample.update(sampler="ddim", steps=100, eta=0.0, variance="small", clip=True, guidance=1.0,
                    grid="default", churn=0.0, s_noise=1.0, churn_tmin=0.0, churn_tmax=1e9)


def _gan(c: ml_collections.ConfigDict) -> None:
    """DCGAN (Radford et al. 2016): its networks, non-saturating loss and Adam(2e-4, beta1 0.5)."""
    # latent_dim: z's size; ngf/ndf: generator/discriminator width at the full-size layer; disc_norm:
    # batch (DCGAN) | none (a WGAN-GP critic) | spectral (Miyato et al. 2018); upsample: subpixel (fast phase form) | transpose
    # (lax.conv_transpose, kept for comparison)
    # StyleGAN2 (gan.arch=stylegan2; Karras et al. 2020): w_dim and mapping_layers of the mapping network,
    # whose learning rate is mapping_lr times the optimiser's; widths min(channel_base / side,
    # channel_max) for the generator and the discriminator; mbstd_group: images per minibatch-std group
    c.model = dict(latent_dim=100, ngf=64, ndf=64, disc_norm="batch", upsample="subpixel", w_dim=128,
                   mapping_layers=8, mapping_lr=0.01, channel_base=4096, channel_max=128, mbstd_group=4)
    # arch: dcgan (the DCGAN networks, Radford et al. 2016) | stylegan2; loss: nonsaturating | wgan-gp
    # (Gulrajani et al. 2017) | hinge (Lim & Ye 2017, SNGAN's); n_critic: critic updates per generator update (train.batch_size counts
    # the real images of all of them); gp_weight: lambda of WGAN-GP; r1_gamma: R1 on real images
    # (Mescheder et al. 2018; 0 = none), lazily every r1_interval steps; pl_weight: StyleGAN2's path-length
    # regulariser (0 = none; the paper's 2) every pl_interval steps on batch / pl_batch_shrink images,
    # its target a running mean with rate pl_decay; style_mixing: the share of steps that mix two
    # ws (the paper's 0.9); w_avg_beta: the rate of w's running mean that truncation pulls towards;
    # augment (jgen.families.augment), on D's side for every GAN: none | diffaug (Zhao et al. 2020: color,
    # translation, cutout) | ada (Karras et al. 2020: probability p steered every ada_interval steps
    # towards E[sign D(real)] = ada_target, moving at most 1 per ada_kimg thousand images)
    c.gan = dict(arch="dcgan", loss="nonsaturating", n_critic=1, gp_weight=10.0, r1_gamma=0.0, r1_interval=16,
                 pl_weight=0.0, pl_interval=4, pl_decay=0.01, pl_batch_shrink=2, style_mixing=0.0,
                 w_avg_beta=0.995, augment="none", ada_target=0.6, ada_interval=4, ada_kimg=500.0)
    # One AdamW per network; ema_decay: the EMA of the generator that sampling uses (0 = none)
    adam = dict(lr=2e-4, warmup_steps=0, decay="none", b1=0.5, b2=0.999, eps=1e-8, weight_decay=0.0, grad_clip=0.0)
    c.optim = dict(gen=adam, disc=dict(adam), ema_decay=0.0)
    # truncation: StyleGAN2's psi, w pulled towards its average (1 = none, 0 = the average image)
    c.sample.update(truncation=1.0)


def _vae(c: ml_collections.ConfigDict) -> None:
    """beta-VAE (Higgins et al. 2017): its networks and objective; Burgess et al. 2018's capacity form."""
    c.model = dict(latent_dim=10)
    # likelihood: bernoulli (pixel intensities in [0, 1]) | gaussian (fixed sigma on the [-1, 1] scale) |
    # gaussian_learned (one learned sigma); objective: beta (recon + beta * KL) | capacity
    # (recon + gamma * |KL - C|, C rising to capacity_max nats over capacity_steps steps)
    # prior: normal (N(0, I), the paper's) | gmm (Ghosh et al. 2020's ex-post mixture of prior_components
    # Gaussians, fitted to the posterior means of a seeded uniform prior_fit_images training images)
    c.vae = dict(likelihood="bernoulli", sigma=0.1, objective="beta", beta=1.0, gamma=1000.0,
                 capacity_max=25.0, capacity_steps=100000, prior="normal", prior_components=10,
                 prior_fit_images=10000)
    c.optim = dict(lr=5e-4, warmup_steps=0, decay="none", b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                   grad_clip=0.0, ema_decay=0.0)


def _autoencoder(c: ml_collections.ConfigDict) -> None:
    """The KL autoencoder of latent diffusion (Rombach et al. 2022): f = 4 on the digits (28 -> 7x7x4)."""
    # widths ch * ch_mult per level (f = 2^(levels - 1)), num_res_blocks per level (the decoder one more),
    # z_channels: latent channels; mid_attention: the middle block's self-attention
    c.model = dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=4, num_groups=32, mid_attention=True,
                   dropout=0.0)
    # recon: l1 | l2 per pixel; kl_weight: on the summed KL (the reference's 1e-6); perceptual: a `jgen
    # train-classifier` directory whose features add an LPIPS-like term at perceptual_weight ("" = none;
    # LPIPS itself needs downloaded VGG weights); disc_start: the step the patch discriminator (disc_layers
    # stride-2 layers, disc_ndf wide) and its adaptive weight (Esser et al. 2021 eq. 7, times disc_weight)
    # join (disc_weight 0: no discriminator, neither run nor trained); disc_loss: hinge | nonsaturating
    c.ae = dict(recon="l1", kl_weight=1e-6, perceptual="", perceptual_weight=1.0, disc_start=1000,
                disc_weight=0.5, disc_loss="hinge", disc_layers=2, disc_ndf=32)
    # One Adam per network, the reference's betas (0.5, 0.9); ema_decay: the EMA of the autoencoder (0 = none)
    adam = dict(lr=2e-4, warmup_steps=0, decay="none", b1=0.5, b2=0.9, eps=1e-8, weight_decay=0.0, grad_clip=0.0)
    c.optim = dict(gen=adam, disc=dict(adam), ema_decay=0.0)
    c.train.steps = 2000
    c.sample.num = 64
