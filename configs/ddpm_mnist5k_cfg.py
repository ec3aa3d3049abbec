"""The ddpm_mnist5k_cfg recipe lives in jgen/configs/ddpm_mnist5k_cfg.py."""

from jgen.configs.ddpm_mnist5k_cfg import get_config  # noqa: F401
