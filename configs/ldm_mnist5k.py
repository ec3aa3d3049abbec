"""The ldm_mnist5k recipe lives in jgen/configs/ldm_mnist5k.py."""

from jgen.configs.ldm_mnist5k import get_config  # noqa: F401
