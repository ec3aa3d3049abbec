"""The dcgan_celeba64 recipe lives in jgen/configs/dcgan_celeba64.py."""

from jgen.configs.dcgan_celeba64 import get_config  # noqa: F401
