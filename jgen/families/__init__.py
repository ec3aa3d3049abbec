"""Model families: one module each (diffusion, gan, vae), with the functions jgen.families.base states."""

from jgen.errors import JgenError


def get_family(name: str):
    """The family module named by config.family; adding a family is one module and one line here."""
    from jgen.families import diffusion, gan, vae

    families = {"diffusion": diffusion, "gan": gan, "vae": vae}
    if name not in families:
        raise JgenError(f"unknown family '{name}' (known: {', '.join(sorted(families))})")
    return families[name]
