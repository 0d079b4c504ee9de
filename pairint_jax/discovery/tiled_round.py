"""The discovery round of genome-scale screens: :func:`~pairint_jax.discovery.rounds.step`
with the policy ``"ids_tiled"``, run on the host.

Nothing of size ``n^2`` is built: the candidates are every pair ``i < j`` except the
observed ones and ``state.exclude`` (pairs in flight), passed to
:func:`~pairint_jax.discovery.tiled.ids_tiled` as a pair list. The fit and the samples are
those of the in-memory round (the same keys), so the batch equals the in-memory ``"ids"``
round's. Before any observation the batch is uniformly random, drawn by rejection sampling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax.discovery import posterior as post
from pairint_jax.discovery.policies import get_policy
from pairint_jax.discovery.tiled import ids_tiled

__all__ = ["random_pairs", "tiled_step"]


def random_pairs(key, n: int, taken: np.ndarray, batch: int) -> np.ndarray:
    """``min(batch, free)`` distinct uniformly random pairs ``i < j`` not in ``taken [k, 2]``,
    without an ``[n, n]`` mask (rejection sampling; deterministic given ``key``): ``[b', 2]`` int."""
    skip = {(int(i), int(j)) for i, j in taken}
    out: list[tuple[int, int]] = []
    want = min(batch, n * (n - 1) // 2 - len(skip))
    draw = 0
    while len(out) < want:
        ij = np.asarray(jax.random.randint(jax.random.fold_in(key, draw), (4 * batch + 16, 2), 0, n))
        draw += 1
        for i, j in ij:
            p = (int(min(i, j)), int(max(i, j)))
            if p[0] != p[1] and p not in skip:
                skip.add(p)
                out.append(p)
                if len(out) == want:
                    break
    return np.array(out, np.int64).reshape(-1, 2)


def tiled_step(key, state, observations, *, model, batch: int, options: dict, lr, sigma_scale, progress=False):
    """:func:`~pairint_jax.discovery.rounds.step` for ``"ids_tiled"`` (host driver; same arguments)."""
    from pairint_jax.discovery.rounds import RoundInfo  # the round's types (rounds imports this module lazily)

    kf, ks, ka = jax.random.split(key, 3)
    mask = np.asarray(observations.mask)
    observed = np.stack([np.asarray(observations.rows)[mask], np.asarray(observations.cols)[mask]], 1)
    taken = np.unique(np.concatenate([observed, np.asarray(state.exclude).reshape(-1, 2)]).astype(np.int64), axis=0)
    n = model.n
    posterior, loss = state.posterior, np.float32(np.nan)
    if not mask.any():
        found = random_pairs(ka, n, taken, batch)
        valid = np.arange(batch) < len(found)
        pairs = np.concatenate([found, np.zeros((batch - len(found), 2), np.int64)])
        score, n_valid, fallback = np.zeros(batch, np.float32), 0, False
    else:
        posterior, info = post.fit_jit(kf, state.posterior, observations, model=model, lr=lr, sigma_scale=sigma_scale)
        samples = post.sample(ks, posterior, model=model)
        remaining = None if state.remaining is None else np.asarray(state.remaining)
        opts = {**get_policy("ids_tiled").options, **options}  # the registry's defaults
        tb = ids_tiled(samples, ka, batch=batch, exclude=taken if len(taken) else None, remaining=remaining,
                       lam=float(opts["lam"]), tile_size=opts["tile_size"], progress=progress)
        pairs, valid, score, n_valid, fallback = tb.pairs, tb.valid, tb.score, tb.n_valid, tb.fallback
        loss = np.float32(info.loss)
    chosen = np.asarray(pairs)[np.asarray(valid)]
    new = state._replace(posterior=posterior, observations=observations, round=state.round + 1,
                         exclude=jnp.asarray(np.concatenate([np.asarray(state.exclude).reshape(-1, 2), chosen]).astype(np.int32)))
    if state.remaining is not None:
        new = new._replace(remaining=jnp.asarray(state.remaining).at[chosen[:, 0], chosen[:, 1]].set(False))
    info = RoundInfo(jnp.asarray(pairs, jnp.int32), jnp.asarray(valid), jnp.asarray(score, jnp.float32),
                     jnp.int32(n_valid), jnp.bool_(fallback), jnp.float32(loss))
    return new, info
