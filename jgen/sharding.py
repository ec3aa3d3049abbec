"""The device mesh: one `data` axis over every device of every process (data parallelism).

Several processes (TPU pod hosts, GPU nodes, or CPU processes on one machine) join one JAX runtime
through `initialize`; after that `jax.devices()` lists every device of every process and the same
jitted step runs unchanged, each process feeding its own rows of the global batch.
"""

import math
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jgen.errors import JgenError


def initialize(coordinator: str = "", num_processes: int = 0, process_id: int = -1, auto: bool = False) -> None:
    """Joins a multi-process run; a no-op for one process.

    coordinator/num_processes/process_id come from flags or from JAX_COORDINATOR_ADDRESS,
    JGEN_NUM_PROCESSES and JGEN_PROCESS_ID. `auto` lets JAX detect them (TPU pods, SLURM, Open MPI),
    where no address is needed. Must run before anything touches a device.
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num_processes = num_processes or int(os.environ.get("JGEN_NUM_PROCESSES", "0"))
    process_id = process_id if process_id >= 0 else int(os.environ.get("JGEN_PROCESS_ID", "-1"))
    if not (coordinator or auto):
        return
    if coordinator and (num_processes < 1 or not 0 <= process_id < num_processes):
        raise JgenError(f"a multi-process run needs --num-processes N and --process-id in [0, N) beside "
                        f"--coordinator (got {num_processes} and {process_id})")
    kwargs = dict(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    try:
        jax.distributed.initialize(**(kwargs if coordinator else {}))
    except (RuntimeError, ValueError) as e:
        raise JgenError(f"jax.distributed.initialize failed: {str(e).strip().splitlines()[0][:200]}") from None


def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over `data`; the rest replicated."""
    return NamedSharding(mesh, P("data"))


def leaf_sharding(mesh: Mesh, shape, mode: str, min_size: int) -> NamedSharding:
    """`replicated`, or for `fsdp` a leaf of at least `min_size` elements split over `data` along its
    largest dimension that the device count divides (XLA then gathers it where a layer needs it whole).
    Leaves with no such dimension, and small ones, whose gathers would cost more than they save, stay
    replicated."""
    n = mesh.devices.size
    if mode == "fsdp" and n > 1 and math.prod(shape) >= min_size:
        for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
            if shape[dim] % n == 0:
                return NamedSharding(mesh, P(*(["data" if d == dim else None for d in range(len(shape))])))
    return replicated(mesh)


def state_sharding(shapes, mesh: Mesh, train) -> object:
    """The sharding of every leaf of a state tree of ShapeDtypeStructs under train.param_sharding and
    train.fsdp_min_size: parameters, EMA and optimiser moments alike (moments have their parameter's shape)."""
    return jax.tree.map(lambda s: leaf_sharding(mesh, s.shape, train.param_sharding, train.fsdp_min_size), shapes)


def check_batch(global_batch: int, mesh: Mesh, grad_accum: int = 1) -> int:
    """Returns the per-process batch; each of the grad_accum micro-batches must split evenly over devices."""
    devices = mesh.devices.size
    if grad_accum < 1:
        raise JgenError(f"train.grad_accum must be >= 1, got {grad_accum}")
    if global_batch % (devices * grad_accum):
        raise JgenError(f"train.batch_size={global_batch} must be divisible by the {devices} devices"
                        + (f" times train.grad_accum={grad_accum}" if grad_accum > 1 else ""))
    return global_batch // jax.process_count()


def any_process(flag: bool) -> bool:
    """Whether `flag` holds on any process (a collective when there are several: all must call it)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def gather(x) -> np.ndarray:
    """A global array as one NumPy array on every process (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
