"""The dcgan_cifar10 recipe lives in jgen/configs/dcgan_cifar10.py."""

from jgen.configs.dcgan_cifar10 import get_config  # noqa: F401
