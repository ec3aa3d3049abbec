"""WGAN-GP (Gulrajani et al. 2017) on CIFAR-10 with the DCGAN networks.

The paper's Algorithm 1: lambda 10, n_critic 5, Adam(1e-4, betas (0, 0.9)), critic batch m = 64, no
BatchNorm in the critic (the penalty is per image). train.batch_size counts the real images one
generator step consumes: n_critic * m = 320. Needs `tfds build cifar10`.
"""

from jgen.configs import dcgan_cifar10


def get_config():
    c = dcgan_cifar10.get_config()
    c.model.update(latent_dim=128, disc_norm="none")
    c.gan.update(loss="wgan-gp", n_critic=5, gp_weight=10.0)
    for net in (c.optim.gen, c.optim.disc):
        net.update(lr=1e-4, b1=0.0, b2=0.9)
    c.optim.ema_decay = 0.999
    c.train.batch_size = 320
    return c
