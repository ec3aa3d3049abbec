"""The ae_celeba64 recipe lives in jgen/configs/ae_celeba64.py."""

from jgen.configs.ae_celeba64 import get_config  # noqa: F401
