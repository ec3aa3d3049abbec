"""The dit_mnist5k recipe lives in jgen/configs/dit_mnist5k.py."""

from jgen.configs.dit_mnist5k import get_config  # noqa: F401
