"""The ldm_celeba64 recipe lives in jgen/configs/ldm_celeba64.py."""

from jgen.configs.ldm_celeba64 import get_config  # noqa: F401
