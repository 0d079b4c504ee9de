"""``pairint score``: score every pair of a user's screen file; write CSV + JSON + PNG per test and ``report.html``."""

from __future__ import annotations

import pathlib
import shlex
import sys
import time
import warnings

import click
import numpy as np

from pairint_jax.commands.common import SEED, check_writable, device_option, load_screen_and_provenance, screen_options, select_device

__all__ = ["COMMANDS", "run_test"]

TESTS = ("disjointedness", "additivity", "separability")


def _parse_bandwidth(value: str):
    """'pair', 'global' or a number, as the library reads it; the library validates it."""
    from pairint_jax.scores.disjointedness.bandwidth import resolve_bandwidth

    try:
        value = float(value)
    except ValueError:
        pass  # a mode name (or a typo, which the library names)
    try:
        resolve_bandwidth(value)
    except (TypeError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint="--bandwidth") from None
    return value


def run_test(screen, test: str, *, seed: int = 0, progress: bool | None = None, **opts):
    """Run one test with CLI-style options; returns ``PairScores``.

    ``opts`` may hold: kernel, bandwidth, permutations, null, stream (disjointedness);
    estimator, k, dim, encoder, tau, epochs, batch_size, learning_rate, model (separability);
    mesh (both).
    """
    import jax

    import pairint_jax as pj

    key = jax.random.key(seed)
    if test == "disjointedness":
        return pj.disjointedness_scores(
            screen,
            kernel=opts.get("kernel", "rbf"),
            bandwidth=opts.get("bandwidth", "pair"),
            n_permutations=opts.get("permutations", 200),
            null=opts.get("null", "permutation"),
            key=key,
            progress=progress,
            mesh=opts.get("mesh"),
            stream=opts.get("stream", False),
        )
    if test == "additivity":
        return pj.additivity_scores(screen)
    if test == "separability":
        return pj.separability_scores(
            screen,
            estimator=opts.get("estimator", "knn"),
            k=opts.get("k", 1),
            dim=opts.get("dim"),
            encoder=opts.get("encoder", "mlp"),
            tau=opts.get("tau", 5.0),
            epochs=opts.get("epochs"),
            batch_size=opts.get("batch_size"),
            learning_rate=opts.get("learning_rate"),
            model=opts.get("model"),
            force_high_dim=opts.get("force_high_dim", False),
            key=key,
            progress=progress,
            mesh=opts.get("mesh"),
        )
    raise click.BadParameter(f"unknown test {test!r}; choose from {TESTS}.")


def _read_groups(path):
    """``{perturbation: group}`` from the ``--groups`` CSV (names read as text, never as NaN);
    every problem is one line naming the file."""
    if not path:
        return None
    import pandas as pd

    where = f"--groups {path}"
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise click.ClickException(
            f"{where}: cannot read it as a CSV ({' '.join(str(err).split())}); "
            "it needs two columns: perturbation, group."
        ) from err
    if df.shape[1] < 2:
        raise click.ClickException(f"{where}: found {df.shape[1]} column(s); it needs two: perturbation, group.")
    if len(df) == 0:
        raise click.ClickException(f"{where}: a header but no rows; list one perturbation and its group per row.")
    names, groups = df.iloc[:, 0].str.strip(), df.iloc[:, 1].str.strip()
    clash = names[names.duplicated(keep=False)]
    clash = [n for n in dict.fromkeys(clash) if groups[names == n].nunique() > 1]
    if clash:
        raise click.ClickException(f"{where}: perturbation {clash[0]!r} is listed in more than one group.")
    return dict(zip(names, groups))


def _parse_pairs(text: str | None, sep: str):
    if not text:
        return []
    pairs = []
    for item in text.split(","):
        parts = [p.strip() for p in item.split(sep)]
        if len(parts) != 2 or not all(parts):
            raise click.BadParameter(f"--highlight: {item!r} is not a pair like A{sep}B.")
        pairs.append(tuple(parts))
    return pairs


@click.command("score")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@screen_options
@click.option("--test", "tests", type=click.Choice([*TESTS, "all"]), multiple=True, default=("disjointedness",), show_default=True,
              help="Which score(s) to compute; repeat the option or use 'all'.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="pairint_out", show_default=True,
              help="Folder for <test>.csv and <test>.png.")
@click.option("--kernel", type=click.Choice(["rbf", "matern52"]), default="rbf", show_default=True, help="Disjointedness: kernel.")
@click.option("--bandwidth", default="pair", show_default=True,
              help="Disjointedness: 'pair' (median per pair), 'global' (one median) or a fixed number.")
@click.option("--permutations", type=click.IntRange(min=0), default=200, show_default=True,
              help="Disjointedness: permutations for p-values (0: no p-values).")
@click.option("--null", type=click.Choice(["permutation", "bootstrap"]), default="permutation", show_default=True,
              help="Disjointedness: how the null distribution is drawn.")
@click.option("--estimator", type=click.Choice(["knn", "nre"]), default="knn", show_default=True,
              help="Separability: k-NN KL (low-dimensional readouts) or a neural ratio estimator + SMILE.")
@click.option("--k", type=click.IntRange(min=1), default=1, show_default=True, help="Separability (knn): neighbour rank.")
@click.option("--dim", type=float, default=None, help="Separability (knn): the d of the k-NN formula (default: feature size).")
@click.option("--encoder", type=click.Choice(["mlp", "cnn"]), default="mlp", show_default=True,
              help="Separability (nre): MLP for vectors, CNN for images [C, H, W].")
@click.option("--tau", type=float, default=5.0, show_default=True, help="Separability (nre): SMILE clip (inf = MILE).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Separability (nre): training epochs (default 50).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Separability (nre): batch size (default 256).")
@click.option("--learning-rate", type=float, default=None, help="Separability (nre): Adam step size.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Separability (nre): reuse a trained critic (.msgpack from --save-model).")
@click.option("--save-model", type=click.Path(dir_okay=False), default=None, help="Separability (nre): save the trained critic here.")
@click.option("--groups", "groups_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV (perturbation, group) used to order the heatmap, e.g. by pathway.")
@click.option("--highlight", default=None, help="Pairs to outline on the heatmap, e.g. 'A+B,C+D'.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed (permutations, NRE).")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True, help="Print the top pairs of each test.")
@click.option("--devices", type=click.Choice(["one", "all"]), default="one", show_default=True,
              help="all: shard the pairs (and conditions) over every visible device with a jax Mesh.")
@click.option("--stream", is_flag=True, default=False,
              help="Disjointedness: keep the doubles in host memory and send them to the device in blocks "
                   "(for screens larger than device memory).")
@click.option("--force-high-dim", is_flag=True, default=False,
              help="Separability (knn): run k-NN KL on more than 4,096 features anyway (it warns above 512).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Level of the 'significant' column (q_value <= alpha).")
@click.option("--correction", type=click.Choice(["bh", "holm"]), default="bh", show_default=True,
              help="Multiple testing: bh = Benjamini-Hochberg (false discovery rate), holm = Holm (family-wise error).")
@click.option("--all-pairs", is_flag=True, default=False,
              help="List every pair in the CSVs, not only the measured ones (the rest say 'not in screen').")
@click.option("--types", "types", is_flag=True, default=False,
              help="Also write types.csv: the interaction type of every pair (pj.interaction_types: c1, c2, "
                   "magnitude, model fit, additive-null p/q-values, type).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on in a terminal or notebook).")
@device_option
def score(path, read, tests, out_dir, kernel, bandwidth, permutations, null, estimator, k, dim,
          encoder, tau, epochs, batch_size, learning_rate, model_path, save_model, groups_path, highlight, seed, top,
          devices, stream, force_high_dim, alpha, correction, all_pairs, types, progress, device):
    """Score every pair of the screen in PATH (.h5ad, .npz or .parquet).

    \b
    Writes into OUT, for each test:
      <test>.csv   one row per measured pair, best first: a, b, score, the test's
                   columns (p_value, q_value, significant, p_floor, bandwidth, kl_a ...)
                   and a reason for pairs that cannot be scored;
      <test>.json  the settings and provenance (input file, versions, device);
      <test>.png   the heatmap, and <test>_pairs.png (volcano or ranked dots);
    and report.html (+ report.md): tables, plots, settings, provenance and what
    each test asks. The CSV feeds 'pairint observe' directly.

    \b
    Examples:
      pairint score screen.h5ad --groupby perturbation --use-rep X_pca
      pairint score screen.npz --test all --out results/
      pairint score screen.parquet --test separability --estimator nre --epochs 30
    """
    check_writable(folders={"--out": out_dir}, files={"--save-model": save_model})
    dev = select_device(device)
    screen, read_info = load_screen_and_provenance(path, **read)
    click.echo(screen.summary())
    click.echo(f"device: {dev}")
    chosen = TESTS if "all" in tests else tuple(dict.fromkeys(tests))
    opts = dict(kernel=kernel, bandwidth=_parse_bandwidth(bandwidth), permutations=permutations, null=null,
                estimator=estimator, k=k, dim=dim, encoder=encoder, tau=tau, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, stream=stream, force_high_dim=force_high_dim)
    if devices == "all":
        import pairint_jax as pj

        opts["mesh"] = pj.make_mesh()
        click.echo(f"sharding over {opts['mesh'].devices.size} device(s)")
    if model_path:
        import pairint_jax as pj

        opts["model"] = pj.nre.load_nre(model_path)
    groups = _read_groups(groups_path)
    pairs = _parse_pairs(highlight, read["sep"])
    out = pathlib.Path(out_dir)
    results = {}
    for test in chosen:
        t0 = time.perf_counter()
        try:
            res = run_test(screen, test, seed=seed, progress=progress, **opts)
        except (ValueError, TypeError) as err:
            raise click.ClickException(f"{test}: {err}") from err
        elapsed = time.perf_counter() - t0
        results[test] = res.with_correction(correction) if "p_value" in res.columns else res
        label = {"disjointedness": f"disjointedness (MMD², {kernel}, bandwidth {bandwidth})",
                 "separability": f"separability ({estimator})", "additivity": "additivity"}[test]
        scored = int(np.isfinite(res.score).sum())
        click.secho(f"\n{label}: {scored} of {int(res.is_measured.sum())} measured pairs scored in {elapsed:.1f} s", bold=True)
        if top:
            click.echo(results[test].top(top, alpha=alpha).to_string(index=False))
        if test == "separability" and save_model and estimator == "nre":
            import pairint_jax as pj

            pj.nre.save_nre(save_model, res.settings["nre_model"])
            click.echo(f"saved the trained critic to {save_model}")
    written = _write_outputs(results, out, screen, alpha=alpha, all_pairs=all_pairs, groups=groups, highlight=pairs,
                             provenance=_input_provenance(path, read=read_info, seed=seed))
    for test, paths in written["files"].items():
        click.echo(f"{test}: " + ", ".join(str(p) for p in paths.values()))
    if types:
        _write_types(screen, out, seed=seed, alpha=alpha)
    click.secho(f"Report: {pathlib.Path(written['report']['html']).resolve()}", bold=True, fg="green")


def _write_types(screen, out: pathlib.Path, *, seed: int, alpha: float) -> None:
    """``types.csv``: :func:`pairint_jax.interaction_types` of every scorable pair, and a count per type."""
    import jax

    import pairint_jax as pj

    try:
        df = pj.interaction_types(screen, key=jax.random.key(seed), alpha=alpha)
    except (ValueError, TypeError) as err:
        raise click.ClickException(f"types: {err}") from err
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "types.csv", index=False)
    counts = ", ".join(f"{t} {n}" for t, n in df["type"].value_counts().items())
    click.echo(f"types: {out / 'types.csv'} ({counts})")


def _input_provenance(path, **options) -> dict:
    """The input file (absolute path, size, modification time), the reading options and the command line."""
    import datetime

    p = pathlib.Path(path).resolve()
    st = p.stat()
    return {
        "input": {"file": str(p), "size_bytes": st.st_size,
                  "modified": datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")},
        "read_options": options,
        # the command line when run as `pairint ...`; every resolved option in any case
        "command": " ".join(shlex.quote(a) for a in ["pairint", *sys.argv[1:]])
        if pathlib.Path(sys.argv[0]).name.startswith("pairint") else "",
        "options": dict(click.get_current_context().params),
    }


def _write_outputs(results, out, screen, *, alpha, all_pairs, groups, highlight, provenance):
    """CSV + JSON + PNGs per test and report.html, printing the library's warnings (e.g. the p-value floor)."""
    from pairint_jax.report import write_score_report

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = write_score_report(results, out, screen=screen, alpha=alpha, all_pairs=all_pairs, groups=groups,
                                     highlight=highlight, provenance=provenance, command=provenance["command"],
                                     title=f"pairint score: {pathlib.Path(provenance['input']['file']).name}")
    shown = [w for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))]
    for message in dict.fromkeys(str(w.message) for w in shown):
        click.secho(f"warning: {message}", fg="yellow", err=True)
    return written


COMMANDS = [score]
