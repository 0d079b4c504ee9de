"""Options shared by several commands, and ``pairint info``."""

from __future__ import annotations

import functools
import warnings

import click

__all__ = ["COMMANDS", "device_option", "screen_options", "load_screen", "load_screen_and_provenance", "select_device"]


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


#: The reading options that :func:`screen_options` gathers into one ``read`` dict.
READ_OPTIONS = ("groupby", "use_rep", "layer", "features", "control", "sep", "drop_unassigned", "max_order")


def screen_options(f):
    """The options that say how to read a screen file (label column(s), readout, control, separator,
    drops). The command receives them as one dict, ``read``, to pass to :func:`load_screen`."""
    opts = [
        click.option("--groupby", default="perturbation", show_default=True,
                     help="Column with the condition labels (AnnData obs / parquet), or two guide columns "
                          "'guide_1,guide_2' (the control token in either means that guide is the control)."),
        click.option("--use-rep", default=None,
                     help="AnnData: the readout, an obsm key (e.g. X_pca) or X. Default: obsm['X_pca'] when "
                          "present, else X (a sparse X is read group by group, never densified whole)."),
        click.option("--layer", default=None, help="AnnData: read the readout from layers[LAYER] instead."),
        click.option("--features", default=None, help="Parquet: comma-separated feature columns, or one list-valued column."),
        click.option("--control", default="ctrl", show_default=True, help="Label of the control condition (comma-separate several)."),
        click.option("--sep", default="+", show_default=True, help="Separator between the two perturbations of a double."),
        click.option("--drop-unassigned/--no-drop-unassigned", default=True, show_default=True,
                     help="Drop (and count) observations with an empty or NaN label; --no-drop-unassigned fails instead."),
        click.option("--drop-higher-order/--no-drop-higher-order", "max_order", default=True, show_default=True,
                     help="Drop (and count) conditions with more than two perturbations; --no-drop-higher-order fails instead."),
    ]

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        read = {name: kwargs.pop(name) for name in READ_OPTIONS}
        read["max_order"] = 2 if read["max_order"] else None
        return f(*args, read=read, **kwargs)

    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper


def load_screen(path, **read):
    """Read a screen for a command (``read``: the options of :func:`screen_options`), turning
    library errors into clean CLI errors; a screen without doubles is an error."""
    return load_screen_and_provenance(path, **read)[0]


def load_screen_and_provenance(path, *, groupby="perturbation", use_rep=None, layer=None, features=None,
                               control="ctrl", sep="+", drop_unassigned=True, max_order=2):
    """:func:`load_screen`, also returning the provenance dict of the read (representation, drops)."""
    from pairint_jax.io import read_screen_and_provenance

    if features and "," in features:
        features = [c.strip() for c in features.split(",")]
    if "," in groupby:
        groupby = [c.strip() for c in groupby.split(",")]
    controls = [c.strip() for c in control.split(",")] if "," in control else control
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            screen, info = read_screen_and_provenance(
                path, groupby=groupby, use_rep=use_rep, layer=layer, features=features, control=controls, sep=sep,
                drop_unassigned=drop_unassigned, max_order=max_order,
            )
        except (ValueError, TypeError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err
    for w in caught:
        click.secho(f"warning: {w.message}", fg="yellow", err=True)
    if not (screen.kinds == 2).any():
        raise click.ClickException(
            f"{path}: no double perturbations with --groupby {groupby!r} and --sep {sep!r}, so there is no pair "
            f"to score (conditions: {', '.join(screen.conditions[:8])}{' ...' if screen.n_groups > 8 else ''}). "
            "Check --groupby and --sep."
        )
    return screen, info


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
def info(path, read):
    """Describe a screen file: conditions, group sizes and which pairs can be scored.

    PATH is a .h5ad, .npz or .parquet file with one observation per row and a
    condition label per row (ctrl, A, A+B). Exits with an error when no label parses
    as a double (e.g. a wrong --sep; the message proposes the right one).
    """
    screen, prov = load_screen_and_provenance(path, **read)
    click.echo(screen.summary())
    click.echo(f"readout: {prov['representation']} ({prov['representation_reason']})")
    un = screen.unscorable
    if un:
        click.echo(f"\n{len(un)} measured pair(s) cannot be scored:")
        for (i, j), why in list(un.items())[:20]:
            click.echo(f"  {screen.perturbations[i]}{screen.sep}{screen.perturbations[j]}: {why}")
        if len(un) > 20:
            click.echo(f"  ... and {len(un) - 20} more")


COMMANDS = [info]
