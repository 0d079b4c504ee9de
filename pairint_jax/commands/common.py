"""Options shared by several commands, and ``pairint info``."""

from __future__ import annotations

import functools
import warnings

import click

__all__ = ["COMMANDS", "device_option", "screen_options", "load_screen", "select_device"]


def select_device(name: str) -> str:
    """Pin JAX to ``cpu``/``gpu`` (or leave ``auto``); returns a description of the device used.

    Must run before the first JAX computation of the process.
    """
    import jax

    if name == "cpu":
        jax.config.update("jax_platforms", "cpu")
    elif name == "gpu":
        try:
            jax.devices("gpu")
        except RuntimeError as err:
            raise click.UsageError(f"--device gpu: JAX sees no GPU ({err}). Install jax[cuda12] or use --device cpu.")
        jax.config.update("jax_platforms", "cuda")
    dev = jax.devices()[0]
    return f"{dev.platform}:{getattr(dev, 'device_kind', '')} ({len(jax.devices())} device(s))"


def device_option(f):
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "gpu"]),
        default="auto",
        show_default=True,
        help="Where JAX runs: auto picks a GPU when one is visible.",
    )(f)


def screen_options(f):
    """The options that say how to read a screen file (label column, readout, control, separator)."""
    opts = [
        click.option("--key", default="perturbation", show_default=True, help="Column with the condition labels (AnnData obs / parquet)."),
        click.option("--obsm", default=None, help="AnnData: read the readout from obsm[KEY] (e.g. X_pca) instead of X."),
        click.option("--features", default=None, help="Parquet: comma-separated feature columns, or one list-valued column."),
        click.option("--control", default="ctrl", show_default=True, help="Label of the control condition (comma-separate several)."),
        click.option("--sep", default="+", show_default=True, help="Separator between the two perturbations of a double."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def load_screen(path, key, obsm, features, control, sep):
    """Read a screen for a command, turning library errors into clean CLI errors."""
    from pairint_jax.io import read_screen

    if features and "," in features:
        features = [c.strip() for c in features.split(",")]
    controls = [c.strip() for c in control.split(",")] if "," in control else control
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            screen = read_screen(path, key=key, obsm=obsm, features=features, control=controls, sep=sep)
        except (ValueError, TypeError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err
    for w in caught:
        click.secho(f"warning: {w.message}", fg="yellow", err=True)
    return screen


def _cli_errors(f):
    """Report library ValueErrors as one-line CLI errors instead of tracebacks."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except ValueError as err:
            raise click.ClickException(str(err)) from err

    return wrapper


@click.command("info")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@screen_options
def info(path, key, obsm, features, control, sep):
    """Describe a screen file: conditions, group sizes and which pairs can be scored.

    PATH is a .h5ad, .npz or .parquet file with one observation per row and a
    condition label per row (ctrl, A, A+B).
    """
    screen = load_screen(path, key, obsm, features, control, sep)
    click.echo(screen.summary())
    un = screen.unscorable
    if un:
        click.echo(f"\n{len(un)} measured pair(s) cannot be scored:")
        for (i, j), why in list(un.items())[:20]:
            click.echo(f"  {screen.perturbations[i]}{screen.sep}{screen.perturbations[j]}: {why}")
        if len(un) > 20:
            click.echo(f"  ... and {len(un) - 20} more")


COMMANDS = [info]
