"""``pairint demo``: the main job, end to end, on a built-in synthetic screen."""

from __future__ import annotations

import pathlib
import time

import click

from pairint_jax.commands.common import SEED, check_writable, device_option, select_device

__all__ = ["COMMANDS"]


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="pairint_demo", show_default=True,
              help="Folder for the report, tables and figures.")
@click.option("--screen", type=click.Choice(["latent-factor", "d11", "d13"]), default="latent-factor", show_default=True,
              help="The main screen. latent-factor: our generator with modules of interacting perturbations; d11/d13: "
                   "the paper's separability (D.1.1) and disjointedness (D.1.3) examples. Each score still runs on a "
                   "screen where its question applies.")
@click.option("--n-perturbations", type=click.IntRange(min=4), default=20, show_default=True,
              help="latent-factor only: number of single perturbations (n(n-1)/2 doubles).")
@click.option("--n-per-condition", type=click.IntRange(min=2), default=None,
              help="Observations per condition (default: 150 latent-factor, 2000 d11, 500 d13).")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Readout dimension (default: the generator's).")
@click.option("--permutations", type=click.IntRange(min=0), default=200, show_default=True,
              help="Permutations for the disjointedness p-values.")
@click.option("--nre/--no-nre", default=True, show_default=True, help="Also train the neural ratio estimator.")
@click.option("--discovery/--no-discovery", default=True, show_default=True, help="Run the active-discovery simulation.")
@click.option("--rounds", type=click.IntRange(min=1), default=None,
              help="Discovery rounds (default: enough to measure about 35% of the pairs).")
@click.option("--batch", type=click.IntRange(min=1), default=10, show_default=True, help="Pairs chosen per round.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Discovery repetitions.")
@click.option("--discovery-perturbations", type=click.IntRange(min=4), default=50, show_default=True,
              help="Discovery runs on the screen's own scores when it has at least this many perturbations, else on "
                   "a latent-factor screen of this size.")
@click.option("--svi-steps", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Discovery: SVI steps per posterior fit (library default 5000).")
@click.option("--posterior-samples", type=click.IntRange(min=2), default=300, show_default=True,
              help="Discovery: posterior samples per round (library default 1000).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the screen and of every random step.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on in a terminal or notebook).")
@device_option
def demo(out_dir, screen, n_perturbations, n_per_condition, dim, permutations, nre, discovery, rounds, batch, seeds,
         discovery_perturbations, svi_steps, posterior_samples, seed, progress, device):
    """Run the whole pipeline on a built-in synthetic screen and write a report.

    \b
    1. generate screens whose true interactions are known;
    2. score every pair with each test on a screen where its question applies:
       disjointedness (RBF and Matern-2.5, with p-values) and additivity on the
       latent-factor screen (disjointedness on D.1.3 with --screen d13),
       separability (k-NN and a neural ratio estimator) on the paper's D.1.1;
    3. simulate active discovery on the disjointedness matrix: IDS (Information
       Directed Sampling) against UCB (upper confidence bound), TS (Thompson
       sampling), US (uncertainty sampling) and random choice;
    4. write OUT/report.html (self-contained), OUT/report.md, CSVs with a JSON of
       settings and provenance each, and PNGs.
    """
    check_writable(folders={"--out": out_dir})
    from pairint_jax.demo import DemoConfig, run_demo

    dev = select_device(device)
    click.echo(f"pairint demo on {dev}")
    cfg = DemoConfig(screen=screen, n_perturbations=n_perturbations, n_per_condition=n_per_condition, dim=dim,
                     seed=seed, permutations=permutations, nre=nre, discovery=discovery, rounds=rounds, batch=batch,
                     seeds=seeds, discovery_min_n=discovery_perturbations, svi_steps=svi_steps,
                     posterior_samples=posterior_samples, progress=progress)
    t0 = time.perf_counter()
    try:
        out = run_demo(out_dir, cfg, echo=click.echo)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    report = pathlib.Path(out["report"]["html"]).resolve()
    click.secho(f"\nDone in {time.perf_counter() - t0:.0f} s. Report: {report}", bold=True, fg="green")
    click.echo(f"Tables and figures are in {report.parent}/ (summary.csv, <test>.csv, <test>.png).")


COMMANDS = [demo]
