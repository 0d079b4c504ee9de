"""``pairint features``: the per-perturbation features of a (singles) screen file, as a features CSV.

The CSV is what ``pairint campaign-init --features FILE.csv`` reads
(:mod:`pairint_jax.discovery.features_csv`); :func:`features_from_screen_file` is the same
computation for other commands (``campaign-init --from-screen``).
"""

from __future__ import annotations

import click

from pairint_jax.commands.common import SEED, check_writable, device_option, load_screen, screen_options, select_device

__all__ = ["COMMANDS", "features_frame_from_screen_file", "features_from_screen_file"]


def features_frame_from_screen_file(path, *, options: dict | None = None, **read):
    """``pj.perturbation_features`` of the screen file at ``path`` (a ``DataFrame`` ``[n, f]``).

    Args:
      path: a ``.h5ad``/``.npz``/``.parquet`` screen; doubles are allowed but not needed.
      options: keywords of :func:`pairint_jax.perturbation_features` (``k``, ``bandwidth``,
        ``features``, ``standardize``, ``key``, ...).
      **read: how to read the file, the options of
        :func:`~pairint_jax.commands.common.screen_options` (``groupby``, ``use_rep``,
        ``control``, ``sep``, ...); defaults as on the command line.

    Raises:
      click.ClickException: the file cannot be read as a screen, or it has no single
        perturbation (one line, for the CLI's error handler).
    """
    import pairint_jax as pj

    screen = load_screen(path, require_doubles=False, **read)
    if not (screen.kinds == 1).any():
        raise click.ClickException(
            f"{path}: no single perturbations (conditions: {', '.join(screen.conditions[:8])}"
            f"{' ...' if screen.n_groups > 8 else ''}), so there is nothing to compute features from. "
            "Check --groupby, --control and --sep."
        )
    return pj.perturbation_features(screen, **(options or {}))


def features_from_screen_file(path, *, options: dict | None = None, **read):
    """``(names, features)``: the screen's perturbation names (``n``) and their ``[n, f]`` float64
    features; arguments and errors as :func:`features_frame_from_screen_file`."""
    import numpy as np

    frame = features_frame_from_screen_file(path, options=options, **read)
    return list(frame.index), frame.to_numpy(np.float64)


def _bandwidth(value: str):
    if value == "global":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither 'global' nor a number.", param_hint="--bandwidth") from None


@click.command("features")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@screen_options
@click.option("--out", type=click.Path(dir_okay=False), default="features.csv", show_default=True,
              help="The features CSV to write (one row per perturbation: its name, then one column per feature).")
@click.option("--only", default="shift,knn_kl,mmd", show_default=True,
              help="Comma-separated features to compute: shift (||mu_i - mu_0||), knn_kl (k-NN KL(p_0 || p_i)), "
                   "mmd (MMD^2 of the single and the control).")
@click.option("--standardize/--raw", default=True, show_default=True,
              help="Z-score each feature across perturbations (--raw: write the values as measured).")
@click.option("--k", type=click.IntRange(min=1), default=1, show_default=True, help="k-NN KL: neighbour rank.")
@click.option("--bandwidth", default="global", show_default=True,
              help="MMD: 'global' (median distance among sampled control and single rows) or a positive number.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the bandwidth's row sample.")
@click.option("--force-high-dim", is_flag=True, default=False, help="Run the k-NN KL on more than 4,096 features anyway.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on in a terminal or notebook).")
@device_option
def features(path, read, out, only, standardize, k, bandwidth, seed, force_high_dim, progress, device):
    """Measure what the singles of the screen in PATH say about each perturbation, and write it as a
    features CSV for a discovery campaign.

    For every perturbation with a single group: the shift of its mean from the control's, the
    k-NN KL from the control to it, and the MMD^2 between it and the control, each z-scored
    across perturbations. A perturbation seen only in doubles gets empty cells. PATH may hold
    singles only (.h5ad, .npz or .parquet).

    \b
    Then:  pairint campaign-init FOLDER -p names.txt --features features.csv
    """
    check_writable(files={"--out": out})
    select_device(device)
    import jax

    from pairint_jax.discovery.features_csv import write_features

    options = {"features": tuple(f.strip() for f in only.split(",") if f.strip()), "standardize": standardize,
               "k": k, "bandwidth": _bandwidth(bandwidth), "key": jax.random.key(seed),
               "force_high_dim": force_high_dim, "progress": progress}
    frame = features_frame_from_screen_file(path, options=options, **read)
    write_features(frame, list(frame.index), out)
    empty = frame.index[frame.isna().all(axis=1)]
    bw = frame.attrs["bandwidth"]
    click.echo(f"wrote {out}: {len(frame)} perturbation(s) x {frame.shape[1]} feature(s) ({', '.join(frame.columns)})"
               + ("" if bw is None else f"; MMD bandwidth {bw:.4g}"))
    for name, why in list(frame.attrs["reason"].items())[:5]:
        click.echo(f"  {name}: {why}")
    if len(frame.attrs["reason"]) > 5:
        click.echo(f"  ... and {len(frame.attrs['reason']) - 5} more with missing values")
    if len(empty):
        click.echo(f"{len(empty)} perturbation(s) have no features (empty cells): a campaign imputes them.")


COMMANDS = [features]
