"""``pairint score``: score every pair of a user's screen file, write CSV + heatmap PNG."""

from __future__ import annotations

import pathlib
import sys
import time

import click

from pairint_jax.commands.common import SEED, check_writable, device_option, load_screen, screen_options, select_device

__all__ = ["COMMANDS", "run_test", "save_scores"]

TESTS = ("disjointedness", "additivity", "separability")


def _parse_bandwidth(value: str):
    if value in ("pair", "global"):
        return value
    try:
        bw = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use 'pair', 'global' or a positive number.") from None
    if not bw > 0:
        raise click.BadParameter(f"{value!r}: a fixed bandwidth must be positive.")
    return bw


def run_test(screen, test: str, *, seed: int = 0, progress: bool = False, **opts):
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
            key=key,
            progress=progress,
            mesh=opts.get("mesh"),
        )
    raise click.BadParameter(f"unknown test {test!r}; choose from {TESTS}.")


def save_scores(res, out: pathlib.Path, name: str, *, title: str, groups=None, highlight=(),
                highlight_label: str = "highlighted pair") -> tuple[pathlib.Path, pathlib.Path]:
    """Write ``<name>.csv`` (the tidy table) and ``<name>.png`` (the heatmap) into ``out``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from pairint_jax.plotting import plot_pair_heatmap

    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"{name}.csv"
    png = out / f"{name}.png"
    res.to_frame().to_csv(csv, index=False)
    fig = plot_pair_heatmap(res, groups=groups, highlight=list(highlight), title=title, highlight_label=highlight_label)
    fig.savefig(png, dpi=130)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return csv, png


def _read_groups(path):
    if not path:
        return None
    import pandas as pd

    df = pd.read_csv(path)
    if df.shape[1] < 2:
        raise click.BadParameter("--groups needs a CSV with two columns: perturbation, group.")
    return dict(zip(df.iloc[:, 0].astype(str), df.iloc[:, 1].astype(str)))


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
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on in a terminal).")
@device_option
def score(path, key, obsm, features, control, sep, tests, out_dir, kernel, bandwidth, permutations, null, estimator, k, dim,
          encoder, tau, epochs, batch_size, learning_rate, model_path, save_model, groups_path, highlight, seed, top,
          devices, stream, progress, device):
    """Score every pair of the screen in PATH (.h5ad, .npz or .parquet).

    \b
    Writes, for each test, OUT/<test>.csv with one row per pair
    (a, b, score, the test's columns such as p_value, q_value, bandwidth or kl_a,
    and a reason for pairs that cannot be scored) and OUT/<test>.png, a heatmap.
    The CSV feeds 'pairint observe' directly.

    \b
    Examples:
      pairint score screen.h5ad --key perturbation --obsm X_pca
      pairint score screen.npz --test all --out results/
      pairint score screen.parquet --test separability --estimator nre --epochs 30
    """
    check_writable(folders={"--out": out_dir}, files={"--save-model": save_model})
    dev = select_device(device)
    if progress is None:
        progress = sys.stderr.isatty()
    screen = load_screen(path, key, obsm, features, control, sep)
    click.echo(screen.summary())
    click.echo(f"device: {dev}")
    chosen = TESTS if "all" in tests else tuple(dict.fromkeys(tests))
    opts = dict(kernel=kernel, bandwidth=_parse_bandwidth(bandwidth), permutations=permutations, null=null,
                estimator=estimator, k=k, dim=dim, encoder=encoder, tau=tau, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, stream=stream)
    if devices == "all":
        import pairint_jax as pj

        opts["mesh"] = pj.make_mesh()
        click.echo(f"sharding over {opts['mesh'].devices.size} device(s)")
    if model_path:
        import pairint_jax as pj

        opts["model"] = pj.nre.load_nre(model_path)
    groups = _read_groups(groups_path)
    pairs = _parse_pairs(highlight, sep)
    out = pathlib.Path(out_dir)
    for test in chosen:
        t0 = time.perf_counter()
        try:
            res = run_test(screen, test, seed=seed, progress=progress, **opts)
        except (ValueError, TypeError) as err:
            raise click.ClickException(f"{test}: {err}") from err
        elapsed = time.perf_counter() - t0
        label = {"disjointedness": f"disjointedness (MMD², {kernel}, bandwidth {bandwidth})",
                 "separability": f"separability ({estimator})", "additivity": "additivity"}[test]
        csv, png = save_scores(res, out, test, title=label, groups=groups, highlight=pairs)
        scored = int((res.to_frame()["reason"] == "").sum())
        click.secho(f"\n{label}: {scored} pairs scored in {elapsed:.1f} s -> {csv}, {png}", bold=True)
        if top:
            click.echo(res.top(top).to_string(index=False))
        if test == "separability" and save_model and estimator == "nre":
            import pairint_jax as pj

            pj.nre.save_nre(save_model, res.settings["nre_model"])
            click.echo(f"saved the trained critic to {save_model}")


COMMANDS = [score]
