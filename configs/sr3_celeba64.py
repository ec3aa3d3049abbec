"""The sr3_celeba64 recipe lives in jgen/configs/sr3_celeba64.py."""

from jgen.configs.sr3_celeba64 import get_config  # noqa: F401
