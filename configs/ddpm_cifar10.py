"""The ddpm_cifar10 recipe lives in jgen/configs/ddpm_cifar10.py."""

from jgen.configs.ddpm_cifar10 import get_config  # noqa: F401
