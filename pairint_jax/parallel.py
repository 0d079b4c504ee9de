"""Chunking and device-mesh helpers shared by ``scores`` and ``discovery``.

``chunked_vmap`` is the one way this library batches a single-item function over
many items (pairs, conditions, actions) with bounded memory: ``vmap`` inside chunks of
``chunk_size`` items, ``lax.map`` (a compiled loop) across chunks. Peak memory is
that of one chunk, and the whole thing is still one compiled program under ``jit``.

With ``mesh=`` (a :class:`jax.sharding.Mesh`) the items are split across the mesh's
devices with :func:`shard_map`: the leading axis is padded to a multiple of the number
of devices (by repeating the last item, so padded items are valid inputs), every
device runs ``chunked_vmap`` on its own slice, and the results are gathered back to a
replicated array (so every process of a multi-host run can read them) with the
padding cut off. There is no other distribution layer: only ``Mesh``,
``NamedSharding``, ``PartitionSpec`` and ``shard_map``.

Every axis of the mesh is used for the item axis (``PartitionSpec(mesh.axis_names)``),
so a 1-D mesh from :func:`make_mesh` and a 2-D ``(hosts, gpus)`` mesh both work; the
number of shards is the number of devices in the mesh.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pairint_jax._validate import optional_positive_int, round_up

__all__ = [
    "chunked_vmap",
    "check_mesh",
    "make_mesh",
    "mesh_size",
    "pad_leading",
    "replicated",
    "shard_map",
    "sharded",
    "sharded_spec",
    "shard_leading",
]

#: Default axis name of :func:`make_mesh`.
AXIS = "shards"


def shard_map(f: Callable, *, mesh: Mesh, in_specs, out_specs) -> Callable:
    """``jax.shard_map`` (jax >= 0.6) or ``jax.experimental.shard_map.shard_map`` (older).

    The per-shard functions of this library use no collectives that need replication
    checks, so the check is off (``check_vma=False`` / ``check_rep=False``).

    Args:
      f: the per-shard function.
      mesh: the :class:`~jax.sharding.Mesh`.
      in_specs: a ``PartitionSpec`` (or pytree prefix of them) per argument.
      out_specs: a ``PartitionSpec`` (or pytree prefix of them) for the outputs.

    Returns:
      The mapped function.

    Example:
      >>> mesh = make_mesh()
      >>> g = shard_map(lambda a: 2 * a, mesh=mesh, in_specs=sharded_spec(mesh), out_specs=sharded_spec(mesh))
      >>> g(jnp.arange(mesh_size(mesh), dtype=jnp.float32)).shape == (mesh_size(mesh),)
      True
    """
    if hasattr(jax, "shard_map"):
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map as _legacy  # pragma: no cover - jax < 0.6

    return _legacy(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)  # pragma: no cover


def make_mesh(devices=None, *, axis_name: str = AXIS) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process, ``jax.devices()``).

    Args:
      devices: a sequence of devices (e.g. ``jax.devices("gpu")[:4]``); default all.
      axis_name: the mesh axis name (default ``"shards"``).

    Returns:
      ``Mesh(devices, (axis_name,))``.

    Example:
      >>> make_mesh().axis_names
      ('shards',)
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("make_mesh needs at least one device.")
    return Mesh(np.asarray(devs, dtype=object), (axis_name,))


def check_mesh(mesh) -> Mesh | None:
    """Validate ``mesh`` and return it with automatic axes (None stays None).

    A mesh from :func:`jax.make_mesh` has *explicit* axes by default (jax >= 0.7), under
    which ``shard_map`` refuses inputs that are not already sharded its way. This
    library places its inputs itself, so the same devices and axis names are returned
    as a mesh with ``AxisType.Auto`` axes; a mesh that already has them is returned as is.

    Raises:
      TypeError: ``mesh`` is neither None nor a :class:`~jax.sharding.Mesh`.
    """
    if mesh is None:
        return None
    if not isinstance(mesh, Mesh):
        raise TypeError(
            "mesh must be a jax.sharding.Mesh (e.g. pairint_jax.make_mesh() or jax.make_mesh(...)) or None, "
            f"got {type(mesh).__name__}."
        )
    axis_type = getattr(jax.sharding, "AxisType", None)
    types = getattr(mesh, "axis_types", None)
    if axis_type is None or types is None or all(t == axis_type.Auto for t in types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(axis_type.Auto,) * len(mesh.axis_names))


def mesh_size(mesh: Mesh) -> int:
    """Number of devices (shards) in the mesh."""
    return int(np.prod(mesh.devices.shape))


def sharded_spec(mesh: Mesh) -> PartitionSpec:
    """``PartitionSpec`` that splits a leading axis over every axis of ``mesh``."""
    names = tuple(mesh.axis_names)
    return PartitionSpec(names[0] if len(names) == 1 else names)


def sharded(mesh: Mesh) -> NamedSharding:
    """``NamedSharding`` splitting the leading axis over every device of ``mesh``."""
    return NamedSharding(mesh, sharded_spec(mesh))


def replicated(mesh: Mesh) -> NamedSharding:
    """``NamedSharding`` holding a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def pad_leading(tree, multiple: int):
    """Pad every leaf's leading axis to a multiple of ``multiple`` by repeating its last item.

    Repeating a real item (not zeros) keeps padded items valid inputs (indices stay in
    range, masks stay consistent); the caller drops the padded results.

    Args:
      tree: a pytree of arrays (NumPy or JAX) sharing the leading axis ``[m, ...]``, ``m >= 1``.
      multiple: the target multiple (e.g. :func:`mesh_size`).

    Returns:
      ``(padded_tree, m)``: leaves ``[ceil(m / multiple) * multiple, ...]``, and ``m``.

    Example:
      >>> padded, m = pad_leading(np.arange(5), 4)
      >>> padded.tolist(), m
      ([0, 1, 2, 3, 4, 4, 4, 4], 5)
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError("pad_leading needs at least one array.")
    m = int(leaves[0].shape[0])
    if m < 1:
        raise ValueError("pad_leading needs a non-empty leading axis.")
    total = round_up(m, multiple)
    if total == m:
        return tree, m

    def pad(x):
        xp = jnp if isinstance(x, jax.Array) else np
        reps = xp.broadcast_to(x[-1:], (total - m,) + tuple(x.shape[1:]))
        return xp.concatenate([x, reps], axis=0)

    return jax.tree.map(pad, tree), m


def _gather_replicated(tree, mesh: Mesh):
    return jax.tree.map(lambda y: jax.lax.with_sharding_constraint(y, replicated(mesh)), tree)


def chunked_vmap(fn: Callable, *args, chunk_size: int | None = None, mesh: Mesh | None = None):
    """Apply ``fn`` to every item along the leading axis of ``args``, in chunks (and shards).

    Args:
      fn: a function of one item of each argument (pytrees allowed). Arrays it closes
        over are replicated to every device under ``mesh``.
      *args: pytrees whose leaves all share the leading axis ``[m, ...]``.
      chunk_size: items per vmapped chunk (static), per device under ``mesh``. ``None``
        or ``>= m`` means a plain ``vmap`` over all (local) items at once.
      mesh: optional :class:`~jax.sharding.Mesh`: items are split over its devices
        (:func:`shard_map`), each device runs the chunked loop on its slice, and the
        results come back replicated. Item ``t`` is computed by the same code whether
        or not a mesh is given; only the batch shape of the ``vmap`` may differ.

    Returns:
      ``fn``'s outputs stacked along a new leading axis ``[m, ...]``, identical to
      ``jax.vmap(fn)(*args)``.

    Example:
      >>> import jax.numpy as jnp
      >>> chunked_vmap(lambda a, b: a @ b, jnp.ones((10, 3)), jnp.ones((10, 3)), chunk_size=4).shape
      (10,)
    """
    leaves = jax.tree.leaves(args)
    if not leaves:
        raise ValueError("chunked_vmap needs at least one array argument.")
    chunk_size = optional_positive_int("chunk_size", chunk_size)
    mesh = check_mesh(mesh)
    if mesh is not None:
        return _sharded_vmap(fn, args, chunk_size, mesh)
    m = leaves[0].shape[0]
    if chunk_size is None or chunk_size >= m:
        return jax.vmap(fn)(*args)
    return jax.lax.map(lambda a: fn(*a), args, batch_size=int(chunk_size))


def _sharded_vmap(fn, args, chunk_size, mesh):
    return shard_leading(lambda *local: chunked_vmap(fn, *local, chunk_size=chunk_size), *args, mesh=mesh)


def shard_leading(fn: Callable, *args, mesh: Mesh, replicated_args: tuple = ()):
    """Run ``fn`` on every device of ``mesh``, each on its slice of the leading axis of ``args``.

    The leading axis (items) is padded to a multiple of the number of devices by
    repeating the last item (:func:`pad_leading`), split over every axis of the mesh
    (:func:`shard_map`), and the outputs are gathered back to a replicated array (so every
    process of a multi-host run can read them) with the padding cut off. ``fn`` must map
    ``[m_local, ...]`` inputs to outputs whose leading axis is the same ``m_local`` items
    (it is a batched function of items).

    Args:
      fn: the per-device function ``fn(*replicated_args, *local_slices_of_args)``.
      *args: pytrees whose leaves share the leading axis ``[m, ...]``.
      mesh: the :class:`~jax.sharding.Mesh`.
      replicated_args: arrays every device reads whole (passed first to ``fn``). Pass
        arrays that ``fn`` indexes with traced indices here rather than closing over
        them: a closed-over array carries the caller's sharding into the per-device code.

    Returns:
      ``fn``'s outputs for all ``m`` items, ``[m, ...]``, replicated.

    Example:
      >>> mesh = make_mesh()
      >>> shard_leading(lambda a: 2 * a, jnp.arange(5.0), mesh=mesh).tolist()
      [0.0, 2.0, 4.0, 6.0, 8.0]
    """
    mesh = check_mesh(mesh)
    padded, m = pad_leading(args, mesh_size(mesh))
    spec = sharded_spec(mesh)
    in_specs = (PartitionSpec(),) * len(replicated_args) + (spec,) * len(args)
    out = shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=spec)(*replicated_args, *padded)
    out = _gather_replicated(out, mesh)
    return jax.tree.map(lambda y: y[:m], out)
