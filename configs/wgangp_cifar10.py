"""The wgangp_cifar10 recipe lives in jgen/configs/wgangp_cifar10.py."""

from jgen.configs.wgangp_cifar10 import get_config  # noqa: F401
