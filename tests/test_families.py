"""The family contract (jgen.families.base) holds for every family module, and nothing else is needed:
the trainer takes the loss path or the update path by which protocol a module meets."""

import pytest

from jgen.families import diffusion, gan, get_family, vae
from jgen.families.base import Family, LossFamily, UpdateFamily
from jgen.errors import JgenError


@pytest.mark.parametrize("module,kind", [(diffusion, LossFamily), (vae, LossFamily), (gan, UpdateFamily)])
def test_each_family_meets_its_protocol(module, kind):
    assert isinstance(module, Family) and isinstance(module, kind)
    other = UpdateFamily if kind is LossFamily else LossFamily
    assert not isinstance(module, other)  # exactly one way to be trained


def test_unknown_family_is_one_line():
    with pytest.raises(JgenError, match="unknown family 'flow'"):
        get_family("flow")
