"""The ldm_lsun256 recipe lives in jgen/configs/ldm_lsun256.py."""

from jgen.configs.ldm_lsun256 import get_config  # noqa: F401
