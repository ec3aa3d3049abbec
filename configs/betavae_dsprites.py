"""The betavae_dsprites recipe lives in jgen/configs/betavae_dsprites.py."""

from jgen.configs.betavae_dsprites import get_config  # noqa: F401
