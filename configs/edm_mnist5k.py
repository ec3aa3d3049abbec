"""The edm_mnist5k recipe lives in jgen/configs/edm_mnist5k.py."""

from jgen.configs.edm_mnist5k import get_config  # noqa: F401
