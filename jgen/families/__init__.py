"""Model families. Each module gives init(config, rng), train_step(config, state, batch), sample(config, params, rng, num)."""

from jgen.errors import JgenError


def get_family(name: str):
    """The family module named by config.family; adding a family is one module and one line here."""
    from jgen.families import diffusion

    families = {"diffusion": diffusion}
    if name not in families:
        raise JgenError(f"unknown family '{name}' (known: {', '.join(sorted(families))})")
    return families[name]
