"""The stylegan2_mnist5k recipe lives in jgen/configs/stylegan2_mnist5k.py."""

from jgen.configs.stylegan2_mnist5k import get_config  # noqa: F401
