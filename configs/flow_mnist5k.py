"""The flow_mnist5k recipe lives in jgen/configs/flow_mnist5k.py."""

from jgen.configs.flow_mnist5k import get_config  # noqa: F401
