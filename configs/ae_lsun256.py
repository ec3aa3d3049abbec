"""The ae_lsun256 recipe lives in jgen/configs/ae_lsun256.py."""

from jgen.configs.ae_lsun256 import get_config  # noqa: F401
