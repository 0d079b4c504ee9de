"""``pairint campaign-init``, ``pairint propose``, ``pairint observe``, ``pairint campaign-status``:
the lab loop on a campaign folder (see :mod:`pairint_jax.discovery.campaign`)."""

from __future__ import annotations

import functools
import math
import pathlib

import click

from pairint_jax._validate import listing
from pairint_jax.commands.common import SEED, _cli_errors, check_writable, device_option, screen_options, select_device
from pairint_jax.discovery.campaign_schema import DEFAULT_RANK, IDS_LAMBDA, LINK_CHOICES  # JAX-free mirrors
from pairint_jax.discovery.model_options import HUB_MODEL  # JAX-free

__all__ = ["COMMANDS"]


def _read_names(perturbations: str) -> list[str]:
    path = pathlib.Path(perturbations)
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return [p.strip() for p in perturbations.split(",") if p.strip()]


#: The screen-reading options of ``campaign-init --from-screen`` (``--features`` is the CSV there).
_FROM_SCREEN_READ = ("groupby", "use_rep", "layer", "control", "sep")


@click.command("campaign-init")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--perturbations", "-p", default=None,
              help="A text file with one perturbation name per line, or a comma-separated list (A,B,C). "
                   "Required unless --from-screen gives them.")
@click.option("--features", "features_csv", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A features CSV (one row per perturbation: its name, then numeric columns; empty = missing), "
                   "e.g. from `pairint features SCREEN --out features.csv`. Stored in the campaign.")
@click.option("--from-screen", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A (singles-only) screen file: the perturbations default to its perturbations, and their features "
                   "(`pairint features`: shift, k-NN KL, MMD) are computed and stored. Read with the options below.")
@click.option("--batch", type=int, default=None,
              help="Pairs per proposed batch, at most the number of pairs.  [default: min(10, number of pairs)]")
@click.option("--policy", type=click.Choice(["ids", "ts", "ucb", "us", "greedy", "hub", "random", "uniform"]), default="ids",
              show_default=True,
              help="How pairs are chosen: information-directed sampling, Thompson sampling, UCB, uncertainty, greedy "
                   "(posterior mean), hub (the model-free mean score of each perturbation), random (also: uniform).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed: the same seed and observations give the same proposals.")
@click.option("--rank", default=DEFAULT_RANK, show_default=True, help="Rank m of the low-rank model of the score matrix.")
@click.option("--steps", default=5000, show_default=True, help="SVI steps per fit.")
@click.option("--samples", "num_samples", default=1000, show_default=True, help="Posterior samples per round.")
@click.option("--lam", default=None, type=float, help=f"IDS: lambda of Psi = Delta^lambda / v (default {IDS_LAMBDA:g}).")
@click.option("--beta", default=None, type=float, help="UCB: exploration weight beta (default 1).")
@click.option("--link", type=click.Choice(LINK_CHOICES), default="auto", show_default=True,
              help="Link of the score model: auto fits |F| (abs) while no observed score is negative (a magnitude such "
                   "as |GI| or the additivity norm) and the identity link once one is.")
@click.option("--feature-interactions/--no-feature-interactions", default=False, show_default=True,
              help="With features: let the posterior learn pair effects of the features, x_i' B x_j (finds more top "
                   "pairs in the first rounds; fewer by round 50 on some maps).")
@click.option("--model", "model_preset", type=click.Choice(["default", "hub"]), default="default", show_default=True,
              help="Posterior preset. hub (pj.HUB_MODEL; needs features): identity link, feature interactions and "
                   "floors on the learned prior scales, for maps driven by hub perturbations whose singles predict "
                   "their pairs (0.31 of Norman's top |GI| pairs by round 50, against 0.27-0.28); it sets --link and "
                   "--feature-interactions.")
@functools.partial(screen_options, only=_FROM_SCREEN_READ)
@click.pass_context
@_cli_errors
def campaign_init(ctx, folder, perturbations, features_csv, from_screen, batch, policy, seed, rank, steps, num_samples,
                  lam, beta, link, feature_interactions, model_preset, read):
    """Start a discovery campaign in FOLDER over all pairs of the given perturbations.

    \b
    From a singles-only screen (names and features from it):
                pairint campaign-init FOLDER --from-screen singles.h5ad
    or with a features CSV:
                pairint features singles.h5ad --out features.csv
                pairint campaign-init FOLDER -p names.txt --features features.csv
    \b
    Then loop:  pairint propose FOLDER   ->  run the pairs in the lab  ->  pairint score ...
                pairint observe FOLDER scores.csv  ->  pairint propose FOLDER  -> ...
    """
    check_writable(folders={"FOLDER": folder})
    _check_sources(ctx, perturbations, features_csv, from_screen)
    names, features = _names_and_features(perturbations, features_csv, from_screen, read)
    from pairint_jax.discovery.campaign import Campaign

    opts = {}
    if lam is not None:
        opts["lam"] = lam
    if beta is not None:
        opts["beta"] = beta
    try:
        c = Campaign.create(folder, names, batch=batch, policy=policy, seed=seed, rank=rank, steps=steps,
                            num_samples=num_samples, policy_options=opts, features=features, link=link,
                            feature_interactions=feature_interactions,
                            model_options=HUB_MODEL if model_preset == "hub" else None)
    except (FileExistsError, TypeError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"created {c!r}")
    if features is not None:
        click.echo(f"stored {_describe_features(features)}")
    click.echo(f"next: pairint propose {folder}")


def _check_sources(ctx, perturbations, features_csv, from_screen) -> None:
    """Usage errors: --features with --from-screen, no names at all, reading options without a screen."""
    if features_csv and from_screen:
        raise click.UsageError("--features and --from-screen are exclusive: --from-screen computes the features from "
                               "the screen; give one of them.", ctx=ctx)
    if perturbations is None and from_screen is None:
        raise click.UsageError("give the perturbations (--perturbations/-p) or a screen to take them from "
                               "(--from-screen singles.h5ad).", ctx=ctx)
    if from_screen is None:
        from click.core import ParameterSource

        given = [p.opts[0] for p in ctx.command.params if p.name in _FROM_SCREEN_READ
                 and ctx.get_parameter_source(p.name) is not ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply with --from-screen (how to read the screen).", ctx=ctx)


def _names_and_features(perturbations, features_csv, from_screen, read):
    """``(names, [n, f] float64 features or None)`` of ``campaign-init``'s sources.

    With ``--from-screen``, the names default to the screen's perturbations; names given as
    well must be the same set (their order is kept). FeaturesFileError (a ValueError) is a
    one-line CLI error through ``_cli_errors``.
    """
    names = None if perturbations is None else _read_names(perturbations)
    if from_screen is None:
        if features_csv is None:
            return names, None
        from pairint_jax.discovery.features_csv import read_features

        return names, read_features(features_csv, names)
    from pairint_jax.commands.features import features_from_screen_file

    screen_names, values = features_from_screen_file(from_screen, **read)
    if names is None:
        return screen_names, values
    extra, absent = sorted(set(names) - set(screen_names)), sorted(set(screen_names) - set(names))
    if extra or absent:
        raise click.ClickException(
            f"--perturbations and --from-screen {from_screen} disagree: "
            + "; ".join(part for part in (
                f"{len(extra)} name(s) not in the screen: {listing(extra)}" if extra else "",
                f"{len(absent)} perturbation(s) of the screen not listed: {listing(absent)}" if absent else "") if part)
            + ". Leave out --perturbations to use the screen's, or list exactly its perturbations."
        )
    row = {name: t for t, name in enumerate(screen_names)}
    return names, values[[row[name] for name in names]]


def _describe_features(features) -> str:
    """``"f feature(s) per perturbation (k missing value(s))"`` of an ``[n, f]`` array."""
    import numpy as np

    values = np.asarray(features, np.float64)
    missing = int(np.isnan(values).sum())
    return (f"{values.shape[1]} feature(s) per perturbation"
            + (f" ({missing} missing value(s), imputed)" if missing else ""))


@click.command("propose")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Also write the batch to this CSV (columns round, a, b). FOLDER/next_batch.csv is always written.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Report the fit on stderr.")
@device_option
@_cli_errors
def propose(folder, out, progress, device):
    """Suggest the next batch of pairs to run for the campaign in FOLDER (saved in FOLDER).

    Proposing again before observing anything new prints the same batch.
    """
    check_writable(folders={"FOLDER": folder}, files={"--out": out})
    select_device(device)
    from pairint_jax.discovery.campaign import Campaign

    c = _open(folder)
    pairs = c.propose(progress=progress)
    click.echo(f"round {c.round}: {len(pairs)} pair(s) to run")
    for a, b in pairs:
        click.echo(f"  {a} + {b}")
    if out:
        import pandas as pd

        pd.DataFrame({"round": c.round, "a": [p[0] for p in pairs], "b": [p[1] for p in pairs]}).to_csv(out, index=False)
        click.echo(f"wrote {out}")
    click.echo(f"saved to {pathlib.Path(folder) / 'next_batch.csv'}")


@click.command("observe")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("scores", type=click.Path(exists=True, dir_okay=False))
@click.option("--score-column", default="score", show_default=True, help="Column of SCORES holding the pair score.")
@_cli_errors
def observe(folder, scores, score_column):
    """Record the pair scores in the CSV SCORES (columns a, b, score) in the campaign in FOLDER.

    The CSV that `pairint score` writes works as is: rows whose score is NaN and that give
    a reason (unscorable pairs) are skipped with a message. Re-observing a pair with the
    same score is harmless; a different score is an error.
    """
    check_writable(folders={"FOLDER": folder})
    import pandas as pd

    c = _open(folder)
    df, vals, reason = _read_scores_csv(scores, score_column)
    nan = ~pd.Series(vals).apply(math.isfinite).to_numpy()
    skip = nan & (reason.to_numpy() != "")
    unexplained = nan & ~skip
    if unexplained.any():
        row = int(unexplained.nonzero()[0][0])
        raise click.ClickException(
            f"{scores}, row {row + 2}: pair ({df['a'].iloc[row]}, {df['b'].iloc[row]}) has score {vals[row]} and no "
            "reason; only finite scores can be observed. Remove the row or give the reason it could not be scored."
        )
    if skip.any():
        click.echo(f"skipped {int(skip.sum())} unscorable pair(s), e.g.:")
        for row in skip.nonzero()[0][:5]:
            click.echo(f"  {df['a'].iloc[row]} + {df['b'].iloc[row]}: {reason.iloc[row]}")
    keep = ~skip
    pairs = list(zip(df["a"][keep], df["b"][keep]))
    res = c.observe(pairs, vals[keep])
    click.echo(f"recorded {res.added} new observation(s) in round {res.round}; {res.unchanged} already known")
    click.echo(repr(c))


#: Spellings of a missing score (pandas' defaults); they apply to the score column only, never to names.
_MISSING_SCORE = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
})


def _read_scores_csv(path, score_column: str):
    """The rows of a scores CSV: ``(table of str, [R] float64 scores, [R] reasons)``.

    Every cell is read as text, so perturbations named ``NA``, ``None``, ``null`` or ``nan``
    stay names; scores are parsed with Python's ``float`` (correctly rounded, so a score
    round-trips bit for bit); a missing score is NaN.
    """
    import numpy as np
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except Exception as err:  # pandas raises several types for malformed files
        raise click.ClickException(f"cannot read {path} as CSV: {' '.join(str(err).split())}") from err
    missing = [col for col in ("a", "b", score_column) if col not in df.columns]
    if missing:
        raise click.ClickException(
            f"{path} lacks column(s) {missing}; it has {list(df.columns)}. Expected a, b and {score_column!r} "
            "(the CSV `pairint score` writes has them)."
        )
    if len(df) == 0:
        raise click.ClickException(
            f"{path} has a header but no rows: there are no pair scores to record (`pairint score` writes such a "
            "file when the screen has no scorable pairs)."
        )
    vals = np.empty(len(df))
    for row, text in enumerate(df[score_column]):
        text = text.strip()
        try:
            vals[row] = math.nan if text in _MISSING_SCORE else float(text)
        except ValueError:
            raise click.ClickException(f"{path}, row {row + 2}: score {text!r} is not a number.") from None
    reason = df["reason"].str.strip() if "reason" in df.columns else pd.Series([""] * len(df))
    return df, vals, reason


@click.command("campaign-status")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--top", default=10, show_default=True, help="Show the best observed pairs.")
@_cli_errors
def campaign_status(folder, top):
    """Summarise the campaign in FOLDER: rounds, observations, stored features, pending pairs, best scores."""
    c = _open(folder)
    click.echo(repr(c))
    features = c.features
    click.echo("features: " + ("none (pairint campaign-init --features FILE.csv or --from-screen SCREEN adds them)"
                               if features is None else _describe_features(features)))
    if c.pending:
        click.echo("pending (proposed, not observed yet): " + ", ".join(f"{a} + {b}" for a, b in c.pending))
    obs = sorted(c.observations, key=lambda o: -o["score"])[:top]
    if obs:
        click.echo(f"best {len(obs)} observed:")
        for o in obs:
            click.echo(f"  {o['a']} + {o['b']}: {o['score']:.6g} (round {o['round']})")


def _open(folder):
    from pairint_jax.discovery.campaign import Campaign

    try:
        return Campaign.open(folder)
    except FileNotFoundError as err:
        raise click.ClickException(str(err)) from err


COMMANDS = [campaign_init, propose, observe, campaign_status]
