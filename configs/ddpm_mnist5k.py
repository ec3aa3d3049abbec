"""The ddpm_mnist5k recipe lives in jgen/configs/ddpm_mnist5k.py."""

from jgen.configs.ddpm_mnist5k import get_config  # noqa: F401
