"""A small DiT (Peebles & Xie 2023) with flow matching on the offline digits: 14x14 tokens of 2x2
patches, width 128, 6 adaLN-Zero blocks of 4 heads, trained like flow_mnist5k (velocity target,
logit-normal t) and sampled by Heun on a uniform grid in t. Not yet measured with the recipe protocol
(a DiT step costs several U-Net steps on a CPU)."""

from jgen.configs import flow_mnist5k


def get_config():
    c = flow_mnist5k.get_config()
    c.model.update(arch="dit", patch_size=2, hidden=128, depth=6, heads=4)
    return c
