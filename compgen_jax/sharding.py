"""Seeds sharded across devices on a `seed` mesh axis; padding seeds fill the last device."""

from __future__ import annotations

from typing import Any

import jax
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
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("seed")))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a copy of every leaf on every device of the mesh (the example pool)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


