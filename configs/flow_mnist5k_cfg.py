"""The flow_mnist5k_cfg recipe lives in jgen/configs/flow_mnist5k_cfg.py."""

from jgen.configs.flow_mnist5k_cfg import get_config  # noqa: F401
