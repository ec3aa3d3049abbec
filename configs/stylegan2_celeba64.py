"""The stylegan2_celeba64 recipe lives in jgen/configs/stylegan2_celeba64.py."""

from jgen.configs.stylegan2_celeba64 import get_config  # noqa: F401
