"""Seeds sharded across devices on a `seed` mesh axis; padding seeds fill the last device."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def seed_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over the devices with axis `seed` (Auto-typed: see STACK.md s.4.5)."""
    devices = devices or jax.devices()
    return jax.make_mesh((len(devices),), ("seed",), devices=devices,
                         axis_types=(jax.sharding.AxisType.Auto,))


def padded_seed_count(num_seeds: int, num_devices: int) -> int:
    """The smallest multiple of the device count that holds every seed."""
    return -(-num_seeds // num_devices) * num_devices


def shard_seeds(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf's leading (seed) axis across the mesh."""
    return _place(tree, NamedSharding(mesh, PartitionSpec("seed")))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a copy of every leaf on every device of the mesh (the example pool)."""
    return _place(tree, NamedSharding(mesh, PartitionSpec()))


def _place(tree: Any, sharding: NamedSharding) -> Any:
    """device_put; across processes, each process fills its own devices' slices of the leaves."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda leaf: _global_array(leaf, sharding), tree)


def _global_array(leaf: Any, sharding: NamedSharding) -> jax.Array:
    """A global array from a leaf every process holds whole (typed PRNG keys via their data)."""
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = _global_array(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def host_array(x: Any) -> np.ndarray:
    """The whole array on this host (gathered from every process when sharded across hosts)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
