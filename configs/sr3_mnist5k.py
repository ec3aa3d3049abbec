"""The sr3_mnist5k recipe lives in jgen/configs/sr3_mnist5k.py."""

from jgen.configs.sr3_mnist5k import get_config  # noqa: F401
