"""The betavae_mnist5k recipe lives in jgen/configs/betavae_mnist5k.py."""

from jgen.configs.betavae_mnist5k import get_config  # noqa: F401
