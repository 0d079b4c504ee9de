"""Options shared by several commands, the CLI's error messages, and ``pairint info``."""

from __future__ import annotations

import errno
import functools
import os
import pathlib
import tempfile
import traceback
import warnings
import zipfile
from collections.abc import Mapping

import click

from pairint_jax._validate import SEED_LIMIT

__all__ = [
    "COMMANDS",
    "INTERRUPTED",
    "SEED",
    "check_writable",
    "describe_error",
    "device_option",
    "load_screen",
    "load_screen_and_provenance",
    "screen_options",
    "select_device",
]

#: Exit code after Ctrl-C (128 + SIGINT).
INTERRUPTED = 130

#: The type of every ``--seed`` option: JAX keys use 32 bits of a seed.
SEED = click.IntRange(0, SEED_LIMIT - 1)


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


def _read_option_decorators() -> dict:
    """The click option of each name in :data:`READ_OPTIONS`."""
    return {
        "groupby": click.option("--groupby", default="perturbation", show_default=True,
                                help="Column with the condition labels (AnnData obs / parquet), or two guide columns "
                                     "'guide_1,guide_2' (the control token in either means that guide is the control)."),
        "use_rep": click.option("--use-rep", default=None,
                                help="AnnData: the readout, an obsm key (e.g. X_pca) or X. Default: obsm['X_pca'] when "
                                     "present, else X (a sparse X is read group by group, never densified whole)."),
        "layer": click.option("--layer", default=None, help="AnnData: read the readout from layers[LAYER] instead."),
        "features": click.option("--features", default=None,
                                 help="Parquet: comma-separated feature columns, or one list-valued column."),
        "control": click.option("--control", default="ctrl", show_default=True,
                                help="Label of the control condition (comma-separate several)."),
        "sep": click.option("--sep", default="+", show_default=True,
                            help="Separator between the two perturbations of a double."),
        "drop_unassigned": click.option(
            "--drop-unassigned/--no-drop-unassigned", default=True, show_default=True,
            help="Drop (and count) observations with an empty or NaN label; --no-drop-unassigned fails instead."),
        "max_order": click.option(
            "--drop-higher-order/--no-drop-higher-order", "max_order", default=True, show_default=True,
            help="Drop (and count) conditions with more than two perturbations; --no-drop-higher-order fails instead."),
    }


def screen_options(f, only: tuple[str, ...] = READ_OPTIONS):
    """The options that say how to read a screen file (label column(s), readout, control, separator,
    drops). The command receives them as one dict, ``read``, to pass to :func:`load_screen`;
    ``only`` picks some of :data:`READ_OPTIONS` (the others keep :func:`load_screen`'s defaults)."""
    opts = _read_option_decorators()

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        read = {name: kwargs.pop(name) for name in only}
        if "max_order" in read:
            read["max_order"] = 2 if read["max_order"] else None
        return f(*args, read=read, **kwargs)

    for name in reversed(only):
        wrapper = opts[name](wrapper)
    return wrapper


def load_screen(path, *, require_doubles: bool = True, **read):
    """Read a screen for a command (``read``: the options of :func:`screen_options`), turning
    library errors into clean CLI errors; a screen without doubles is an error unless
    ``require_doubles=False`` (a singles-only screen, e.g. for ``pairint features``)."""
    return load_screen_and_provenance(path, require_doubles=require_doubles, **read)[0]


def load_screen_and_provenance(path, *, groupby="perturbation", use_rep=None, layer=None, features=None,
                               control="ctrl", sep="+", drop_unassigned=True, max_order=2, require_doubles=True):
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
        except Exception as err:
            if debugging():
                raise
            raise click.ClickException(_screen_file_error(path, err)) from err
    for w in caught:
        click.secho(f"warning: {w.message}", fg="yellow", err=True)
    if require_doubles and not (screen.kinds == 2).any():
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
            if debugging():
                raise
            raise click.ClickException(str(err)) from err

    return wrapper


# ----------------------------------------------------------------------------- errors


def debugging() -> bool:
    """Whether ``pairint --debug`` is on: then errors keep their traceback."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("debug"))


_OS_FIXES = {
    errno.EACCES: "check its permissions or choose another location",
    errno.EPERM: "check its permissions or choose another location",
    errno.EROFS: "the file system is read-only; choose another location",
    errno.ENOSPC: "the disk is full; free some space or choose another location",
    errno.EDQUOT: "the disk quota is exceeded; free some space or choose another location",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENAMETOOLONG: "use a shorter name",
}

_SCREEN_FIXES = {
    "h5ad": "is it a complete AnnData file? Write it again with adata.write_h5ad(path)",
    "npz": "is it a complete archive written by np.savez(path, x=x, labels=labels)?",
    "parquet": "is it a complete Parquet file? Write it again with df.to_parquet(path)",
}


def _one_line(text: str, limit: int = 600) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _os_error(err: OSError) -> str:
    what = err.strerror or _one_line(str(err)) or type(err).__name__
    where = os.fspath(err.filename) if err.filename is not None else ""
    if err.filename2 is not None:
        where += f" -> {os.fspath(err.filename2)}"
    fix = _OS_FIXES.get(err.errno)
    head = f"{where}: {what}" if where else what
    return f"{head}; {fix}." if fix else f"{head}."


def _is_device_error(err: BaseException) -> bool:
    return type(err).__name__ in ("XlaRuntimeError", "JaxRuntimeError")


def describe_error(err: BaseException) -> str:
    """One line for an exception that reached the CLI: what went wrong, where, and the fix.

    ``OSError`` names the file and its problem (permission, read-only file system, full
    disk, ...); ``ValueError``/``TypeError`` and friends from the library already name the
    parameter and are kept, on one line; a device failure suggests how to use less memory.
    Anything else is reported as a bug, with how to get the traceback.
    """
    if isinstance(err, MemoryError):
        return "out of memory. Score fewer conditions at a time, use --stream, or run on a machine with more memory."
    if _is_device_error(err):
        first = _one_line(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__, 300)
        return (
            f"the computation failed on the device: {first}. If it ran out of memory, try --stream, "
            "--device cpu, or fewer conditions."
        )
    if isinstance(err, OSError) and (err.filename is not None or err.strerror):
        return _os_error(err)
    if isinstance(err, KeyError):
        return f"missing key {err.args[0]!r}." if err.args else "missing key."
    if isinstance(err, (ValueError, TypeError, OSError, EOFError, LookupError, zipfile.BadZipFile)):
        return _one_line(str(err)) or type(err).__name__
    return (
        f"internal error ({type(err).__name__}: {_one_line(str(err), 300)}). This is a bug in pairint: please report "
        "it with the traceback that `pairint --debug ...` prints."
    )


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raised_by_pairint(err: BaseException) -> bool:
    """Whether ``err`` was raised by pairint_jax's own checks (clear messages already)."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(_PACKAGE_DIR + os.sep)


def _screen_file_error(path, err: BaseException) -> str:
    """The one-line message for a screen file that could not be read."""
    if _raised_by_pairint(err) and isinstance(err, (ValueError, TypeError, OSError)):
        message = describe_error(err)
        return message if str(path) in message else f"{path}: {message}"
    suffix = str(path).lower().rsplit(".", 1)[-1]
    fix = _SCREEN_FIXES.get(suffix, "is it a .h5ad, .npz or .parquet screen file?")
    if isinstance(err, EOFError) or (isinstance(err, OSError) and "signature" in str(err)):
        problem = "the file is empty or not in this format"
    elif suffix == "npz" and "pickle" in str(err):  # numpy: neither a zip archive nor an .npy array
        problem = "it is not an .npz archive"
    elif isinstance(err, zipfile.BadZipFile):
        problem = f"it is not a complete .npz (zip) archive ({_one_line(str(err), 200)})"
    else:
        problem = describe_error(err).rstrip(".")
    return f"cannot read the screen file {path}: {problem}; {fix}"


# ----------------------------------------------------------------------------- outputs


def check_writable(*, folders: Mapping[str, object] | None = None, files: Mapping[str, object] | None = None) -> None:
    """Fail fast, before any work, unless every output of a command can be written.

    Missing folders are created (the output folder itself, or a file's parent folder), then
    a probe file is created and removed in each; an existing output file must open for
    appending (it is not changed). ``None`` paths (options not given) are skipped.

    Args:
      folders: ``{option: folder}``, e.g. ``{"--out": "results"}``.
      files: ``{option: file}``, e.g. ``{"--save-model": "critic.msgpack"}``.

    Raises:
      click.ClickException: one line naming the option, the path and the problem.
    """
    for option, value in (folders or {}).items():
        if value is not None:
            _probe_folder(option, pathlib.Path(value), pathlib.Path(value))
    for option, value in (files or {}).items():
        if value is None:
            continue
        path = pathlib.Path(value)
        if path.is_dir():
            raise click.ClickException(f"{option} {path}: it is a folder; give a file name.")
        _probe_folder(option, path, path.parent)
        if path.exists():
            try:
                with open(path, "ab"):
                    pass
            except OSError as err:
                raise click.ClickException(f"{option} {path}: cannot write it ({describe_error(err).rstrip('.')}).") from err


def _probe_folder(option: str, target: pathlib.Path, folder: pathlib.Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise click.ClickException(f"{option} {target}: {existing} is a file, not a folder; choose another path.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".pairint-probe-"):
            pass
    except OSError as err:
        what = err.strerror or _one_line(str(err))
        fix = _OS_FIXES.get(err.errno, "choose another location")
        raise click.ClickException(f"{option} {target}: cannot write there ({what}); {fix}.") from err


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
