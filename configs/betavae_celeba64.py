"""The betavae_celeba64 recipe lives in jgen/configs/betavae_celeba64.py."""

from jgen.configs.betavae_celeba64 import get_config  # noqa: F401
