"""The device mesh: one `data` axis over every device of every process (data parallelism)."""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jgen.errors import JgenError


def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over `data`; the rest replicated."""
    return NamedSharding(mesh, P("data"))


def check_batch(global_batch: int, mesh: Mesh) -> int:
    """Returns the per-process batch; the global batch must split evenly over devices."""
    if global_batch % mesh.devices.size:
        raise JgenError(f"train.batch_size={global_batch} must be divisible by the {mesh.devices.size} devices")
    return global_batch // jax.process_count()
