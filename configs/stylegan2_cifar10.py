"""The stylegan2_cifar10 recipe lives in jgen/configs/stylegan2_cifar10.py."""

from jgen.configs.stylegan2_cifar10 import get_config  # noqa: F401
