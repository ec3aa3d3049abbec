"""Model families: one module each (diffusion, gan, vae, autoencoder), with the functions jgen.families.base states."""

from jgen.errors import JgenError


def get_family(name: str):
    """The family module named by config.family; adding a family is one module and one line here."""
    from jgen.families import autoencoder, diffusion, gan, vae

    families = {"diffusion": diffusion, "gan": gan, "vae": vae, "autoencoder": autoencoder}
    if name not in families:
        raise JgenError(f"unknown family '{name}' (known: {', '.join(sorted(families))})")
    return families[name]
