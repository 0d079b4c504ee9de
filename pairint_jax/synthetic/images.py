"""D.1.2: ball images for the separability test (paper App. D.1.2).

Each observation is a ``3 x size x size`` RGB image (default 128, values in ``[0, 1]``,
channel-first ``[N, 3, H, W]``): three small balls (blue, purple, red) drawn over a
random background of large green and yellow balls on a dark ground.

**Latents.** The three ball positions follow the D.1.1 latent structure exactly: the
latents ``Z1, Z2, Z3`` are ``N(0, 1)``, or ``N(3, 1)`` when any perturbation of the
condition targets them (A -> Z1, B -> Z1, Z2, C -> Z3, D -> Z3). Ball ``k`` (blue for
``Z1``, purple for ``Z2``, red for ``Z3``) sits at

    t_k = sigmoid((Z_k - 1.5) / 1.5)
    (row, col)_k = size * (start_k + 0.5 * t_k * (1, 1))

with ``start = (0.0625, 0.4375), (0.25, 0.25), (0.4375, 0.0625)`` for blue, purple
and red. So each latent moves both coordinates of its ball along a diagonal segment of
length ``size / sqrt(2)``; the map is strictly monotone (injective), the control mostly
fills the first half of a segment and a perturbed latent the second. The three segments
are parallel and ``0.27 * size`` apart, so the small balls (radius ``size * 6 / 128``)
never touch. Coordinates are in pixels, pixel ``(r, c)`` having its centre at ``(r, c)``.

**Background.** ``n_background`` large balls per image (default 6) with centres uniform
over the image, radii uniform in ``[0.12, 0.25] * size`` and colour green or yellow with
probability 1/2 each, drawn first; it has the same distribution in every condition, so it
changes no divergence between conditions. Optional Gaussian pixel noise (``noise=``).

**Rendering** is pure JAX: every disc is a vectorised distance test over the pixel grid
with an anti-aliased edge (``alpha = clip((radius - dist) / edge + 1/2, 0, 1)``),
composited in order by a ``lax.scan`` over discs. Images are rendered in chunks of
``images_per_chunk`` (``lax.map``) inside compiled calls of ``block_size`` images, each copied
into one host array, so device memory stays bounded whatever ``N``. Truth: A-B and C-D.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import as_key, positive_int, renamed_keywords
from pairint_jax.screen import MIN_OBSERVATIONS
from pairint_jax.synthetic._common import (
    Latents,
    all_doubles,
    build_screen,
    check_real,
    condition_table,
    truth_from_targets,
)
from pairint_jax.synthetic.tabular import D11_TARGETS, condition_masks, d11_latents

__all__ = ["balls", "ball_positions", "render_scenes", "BALL_COLOURS", "BACKGROUND_COLOURS"]

#: RGB of the blue, purple and red balls (latents Z1, Z2, Z3).
BALL_COLOURS = ((0.10, 0.20, 0.95), (0.60, 0.10, 0.80), (0.95, 0.10, 0.10))
#: RGB of the green and yellow background balls.
BACKGROUND_COLOURS = ((0.20, 0.75, 0.25), (0.95, 0.90, 0.20))
#: RGB of the ground.
GROUND_COLOUR = (0.08, 0.08, 0.08)
#: Segment starts (row, col) as fractions of the image size; each segment runs +0.5 in both.
_STARTS = ((0.0625, 0.4375), (0.25, 0.25), (0.4375, 0.0625))
_SEGMENT = 0.5
_SMALL_RADIUS = 6.0 / 128.0
_BG_RADIUS = (0.12, 0.25)


def ball_positions(z: jax.Array, size: int = 128) -> jax.Array:
    """Pixel centres of the three small balls from their latents.

    ``t = sigmoid((z - 1.5) / 1.5)``, ``(row, col) = size * (start + 0.5 * t)``.

    Args:
      z: ``[..., 3]`` latents ``Z1, Z2, Z3``.
      size: image side in pixels.

    Returns:
      ``[..., 3, 2]`` float centres ``(row, col)`` in pixels.
    """
    t = jax.nn.sigmoid((jnp.asarray(z) - 1.5) / 1.5)
    starts = jnp.asarray(_STARTS, jnp.float32)
    return size * (starts + _SEGMENT * t[..., None])


def _render_one(centres, radii, colours, edge, size: int):
    """One image ``[3, size, size]`` from discs drawn in order (painter's algorithm)."""
    grid = jnp.arange(size, dtype=jnp.float32)
    rows, cols = grid[:, None], grid[None, :]
    ground = jnp.broadcast_to(jnp.asarray(GROUND_COLOUR, jnp.float32)[:, None, None], (3, size, size))

    def paint(img, disc):
        centre, radius, colour = disc
        dist = jnp.sqrt((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2)
        alpha = jnp.clip((radius - dist) / edge + 0.5, 0.0, 1.0)
        return img + alpha[None] * (colour[:, None, None] - img), None

    img, _ = jax.lax.scan(paint, ground, (centres, radii, colours))
    return img


@renamed_keywords(chunk_size="images_per_chunk")
def render_scenes(centres, radii, colours, *, size: int = 128, edge: float = 1.0, images_per_chunk: int = 64):
    """Render images of coloured discs, in chunks.

    Args:
      centres: ``[N, D, 2]`` disc centres ``(row, col)`` in pixels, drawn in order ``0..D-1``.
      radii: ``[N, D]`` radii in pixels.
      colours: ``[N, D, 3]`` RGB in ``[0, 1]``.
      size: image side (static).
      edge: anti-aliasing width in pixels (> 0; small values give hard discs).
      images_per_chunk: images rendered per vmapped chunk (static).

    Returns:
      ``[N, 3, size, size]`` float32 images.
    """
    render = functools.partial(_render_one, edge=jnp.maximum(edge, 1e-6), size=size)
    return jax.lax.map(lambda a: render(*a), (centres, radii, colours), batch_size=images_per_chunk)


def _background(key, n: int, n_background: int, size: int):
    u = jax.random.uniform(key, (n, n_background, 4))  # one draw: centre (2), radius, colour
    centres = size * u[..., :2]
    radii = size * (_BG_RADIUS[0] + (_BG_RADIUS[1] - _BG_RADIUS[0]) * u[..., 2])
    palette = jnp.asarray(BACKGROUND_COLOURS, jnp.float32)
    return centres, radii, palette[(u[..., 3] < 0.5).astype(jnp.int32)]


@functools.partial(jax.jit, static_argnames=("n_control", "n_per_condition", "n_background", "size"))
def _scenes(key, masks, shift, *, n_control, n_per_condition, n_background, size):
    """Latents, ball positions and every disc of every image (small arrays)."""
    kz, kb = jax.random.split(key)
    z = d11_latents(kz, masks, shift, n_control, n_per_condition)
    n = z.shape[0]
    pos = ball_positions(z, size)
    bg_c, bg_r, bg_col = _background(kb, n, n_background, size)
    centres = jnp.concatenate([bg_c, pos], axis=1)
    radii = jnp.concatenate([bg_r, jnp.full((n, 3), _SMALL_RADIUS * size, jnp.float32)], axis=1)
    colours = jnp.concatenate([bg_col, jnp.broadcast_to(jnp.asarray(BALL_COLOURS, jnp.float32), (n, 3, 3))], axis=1)
    return z, pos, centres, radii, colours


@functools.partial(jax.jit, static_argnames=("size", "images_per_chunk"))
def _render_block(key, index, centres, radii, colours, noise, edge, *, size, images_per_chunk):
    """Render one block of images; the pixel noise of image ``i`` is keyed by ``fold_in(key, i)``."""
    images = render_scenes(centres, radii, colours, size=size, edge=edge, images_per_chunk=images_per_chunk)
    eps = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), images.shape[1:]))(index)
    return images + noise * eps


def _render_all(key, centres, radii, colours, noise, edge, size, images_per_chunk, block_size) -> np.ndarray:
    """Render every image into one host array, ``block_size`` images per compiled call.

    Only one block lives on the device at a time; the last block is padded (repeating
    its last image) so every call has the same static shape.
    """
    n = centres.shape[0]
    block = min(block_size, n)
    out = np.empty((n, 3, size, size), np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        index = np.minimum(np.arange(start, start + block), n - 1)
        images = _render_block(
            key,
            jnp.asarray(index, jnp.int32),
            jnp.asarray(centres[index]),
            jnp.asarray(radii[index]),
            jnp.asarray(colours[index]),
            noise,
            edge,
            size=size,
            images_per_chunk=images_per_chunk,
        )
        out[start:stop] = np.asarray(images)[: stop - start]
    return out


@renamed_keywords(chunk_size="images_per_chunk")
def balls(
    key,
    *,
    n_per_condition: int = 50,
    n_control: int | None = None,
    size: int = 128,
    n_background: int = 6,
    shift: float = 3.0,
    noise: float = 0.0,
    edge: float = 1.0,
    images_per_chunk: int = 64,
    block_size: int = 2048,
    return_latents: bool = False,
):
    """The D.1.2 screen: images of three balls whose positions follow D.1.1.

    Model (per observation of condition ``c``)::

        Z_l ~ N(shift * [some perturbation of c targets l], 1),  l = 1, 2, 3
        image = render(blue at p(Z1), purple at p(Z2), red at p(Z3), random background)

    with ``p`` the diagonal-segment map of the module docstring. All 4 singles (A..D)
    and all 6 doubles are generated. Memory: ``N * 3 * size^2 * 4`` bytes (196 kB per
    128x128 image, about 108 MB at the default 50 per condition).

    Args:
      key: JAX PRNG key (or int seed). Same key, same screen.
      n_per_condition: images per single and double (static).
      n_control: control images (static); default ``n_per_condition``.
      size: image side in pixels (static, >= 32). Default 128.
      n_background: large background balls per image (static, >= 0).
      shift: mean of a perturbed latent (paper: 3).
      noise: standard deviation of i.i.d. Gaussian pixel noise (default 0).
      edge: anti-aliasing width of disc edges in pixels.
      images_per_chunk: images rendered per vmapped chunk (static; formerly ``chunk_size``);
        bounds the working memory.
      block_size: images per compiled rendering call (static); at most this many images
        (``block_size * 3 * size^2 * 4`` bytes, 400 MB at the default) are on the device at
        once, and the host array is filled block by block. Does not change the images.
      return_latents: also return :class:`~pairint_jax.synthetic.Latents` with
        ``z [N, 3]`` and ``position [N, 3, 2]`` (ball centres, pixels).

    Returns:
      ``(screen, truth)`` or ``(screen, truth, latents)``: ``screen.x`` is
      ``[N, 3, size, size]`` float32 with ``N = n_control + 10 * n_per_condition``;
      ``truth`` ``[4, 4]`` bool, True for A-B and C-D.

    Example:
      >>> screen, truth = balls(jax.random.key(0), n_per_condition=2, size=64)
      >>> screen.x.shape
      (22, 3, 64, 64)
    """
    key = as_key(key, default_seed=None)
    n_per_condition = positive_int("n_per_condition", n_per_condition, minimum=MIN_OBSERVATIONS)
    n_control = n_per_condition if n_control is None else positive_int("n_control", n_control, minimum=MIN_OBSERVATIONS)
    size = positive_int("size", size, minimum=32)
    n_background = positive_int("n_background", n_background, minimum=0)
    images_per_chunk = positive_int("images_per_chunk", images_per_chunk)
    block_size = positive_int("block_size", block_size)
    shift = check_real("shift", shift)
    noise = check_real("noise", noise, low=0.0)
    edge = check_real("edge", edge, low=0.0, open_low=True)
    names = list(D11_TARGETS)
    sets = [frozenset(D11_TARGETS[n]) for n in names]
    labels, members = condition_table(names, all_doubles(len(names)))
    masks = condition_masks(members[1:], sets, 3)
    k_scene, k_noise = jax.random.split(key)
    z, pos, centres, radii, colours = (
        np.asarray(t)
        for t in _scenes(
            k_scene,
            jnp.asarray(masks),
            jnp.float32(shift),
            n_control=n_control,
            n_per_condition=n_per_condition,
            n_background=n_background,
            size=size,
        )
    )
    images = _render_all(
        k_noise, centres, radii, colours, jnp.float32(noise), jnp.float32(edge), size, images_per_chunk, block_size
    )
    screen = build_screen(images, labels, n_control, n_per_condition, names)
    del images
    truth = truth_from_targets(sets)
    if return_latents:
        return screen, truth, Latents(z=z, position=pos)
    return screen, truth
