"""The dcgan_mnist5k recipe lives in jgen/configs/dcgan_mnist5k.py."""

from jgen.configs.dcgan_mnist5k import get_config  # noqa: F401
