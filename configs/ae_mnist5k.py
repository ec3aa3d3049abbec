"""The ae_mnist5k recipe lives in jgen/configs/ae_mnist5k.py."""

from jgen.configs.ae_mnist5k import get_config  # noqa: F401
