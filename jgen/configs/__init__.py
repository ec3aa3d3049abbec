"""jgen's recipes: `base.py` holds every section and default of each family; each recipe file is
`base.get_config(family)` plus the keys it changes (or another recipe plus its changes).

The recipes live in the package, not only in the checkout's configs/, so that there is one source
of truth that `pip install .` ships: `--config ddpm_mnist5k` names a packaged recipe from any
directory, while the top-level configs/*.py are one-line files importing these, so
`--config configs/ddpm_mnist5k.py` keeps working from a checkout.
"""

RECIPES = (
    "betavae_celeba64",
    "betavae_dsprites",
    "betavae_mnist5k",
    "dcgan_celeba64",
    "dcgan_cifar10",
    "dcgan_mnist5k",
    "ddpm_cifar10",
    "ddpm_mnist5k",
    "ddpm_mnist5k_cfg",
    "sr3_celeba64",
    "sr3_mnist5k",
    "wgangp_cifar10",
)
