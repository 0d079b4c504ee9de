"""The end-to-end demo behind ``pairint demo``: screens -> every score -> discovery -> report.

Each score runs on a screen where its question applies (the headline table would mislead
otherwise): separability on the paper's D.1.1 screen, where the interacting pairs share a
latent factor; disjointedness and additivity on the latent-factor screen, where they share
a program (and disjointedness also on D.1.3, built for it). The screen chosen with
``--screen`` is always one of them.

An edge of the library (it imports everything, nothing imports it). Each step is timed;
the outputs are CSV tables (each with a JSON of settings and provenance), PNG figures and
one self-contained ``report.html`` (plus ``report.md``) written by the same writer as
``pairint score``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable

import numpy as np

from pairint_jax import _validate as V

__all__ = ["DemoConfig", "run_demo", "SCREENS", "APPLIES"]

#: Built-in screens: name -> (generator attribute in pj.synthetic, description).
SCREENS = {
    "latent-factor": ("latent_factor", "our latent-factor screen: a mixture of programs, modules of interacting perturbations"),
    "d11": ("separability_tabular", "paper D.1.1: 3 Gaussian latents behind a random 7-layer MLP (separability)"),
    "d13": ("disjointedness_mixture", "paper D.1.3: a 6-component mixture behind a random 10-layer MLP (disjointedness)"),
}

#: The screens on which each test's question matches the planted truth (first: the default one).
APPLIES = {"disjointedness": ("latent-factor", "d13"), "additivity": ("latent-factor",), "separability": ("d11",)}

_READING = (
    "**Reading the numbers.** Disjointedness is an unbiased estimate of MMD², so when a pair does not interact its "
    "score scatters around 0 and is negative about half the time: a negative MMD² is not an error, it means no "
    "evidence of interaction (the permutation p-value is the test). Separability subtracts KL divergences that are "
    "estimated from samples; a KL estimate can come out negative (finite-sample bias of the k-NN estimator, clipping "
    "in SMILE) although a true KL never is, and such conditions cannot be told from the control at this sample size. "
    "AUROC is the probability that a truly interacting pair scores above a non-interacting one (0.5 = chance)."
)


@dataclasses.dataclass
class DemoConfig:
    """Settings of one demo run (every one has a sensible default)."""

    screen: str = "latent-factor"
    n_perturbations: int = 20
    n_per_condition: int | None = None  # None: the screen's demo default
    dim: int | None = None
    seed: int = 0
    permutations: int = 200
    nre: bool = True
    nre_epochs: int = 20
    discovery: bool = True
    rounds: int | None = None  # None: enough rounds to measure ~35% of the pairs
    batch: int = 10
    seeds: int = 3
    policies: tuple[str, ...] = ("ids", "ucb", "ts", "us", "greedy", "hub", "random")
    svi_steps: int = 1000
    posterior_samples: int = 300
    discovery_min_n: int = 50
    progress: bool | None = None  # None: bars when a person is watching (terminal or notebook)

    def __post_init__(self):  # every setting is checked here, before any work
        V.one_of("screen", self.screen, sorted(SCREENS))
        V.positive_int("n_perturbations", self.n_perturbations, minimum=2)
        V.optional_positive_int("n_per_condition", self.n_per_condition, minimum=2)
        V.optional_positive_int("dim", self.dim)
        V.seed("seed", self.seed)
        V.nonnegative_int("permutations", self.permutations)
        V.as_bool("nre", self.nre)
        V.positive_int("nre_epochs", self.nre_epochs)
        V.as_bool("discovery", self.discovery)
        V.optional_positive_int("rounds", self.rounds)
        V.positive_int("batch", self.batch)
        V.positive_int("seeds", self.seeds)
        if isinstance(self.policies, str) or not all(isinstance(p, str) for p in self.policies) or not self.policies:
            raise TypeError(f"policies must be a non-empty tuple of policy names, got {self.policies!r}.")
        V.positive_int("svi_steps", self.svi_steps)
        V.positive_int("posterior_samples", self.posterior_samples)
        V.positive_int("discovery_min_n", self.discovery_min_n, minimum=2)
        if self.progress is not None:
            V.as_bool("progress", self.progress)


def _auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``truth`` (ties count half)."""
    ok = np.isfinite(scores)
    s, t = scores[ok], truth[ok].astype(bool)
    if t.all() or not t.any():
        return float("nan")
    from scipy.stats import rankdata

    r = rankdata(s)
    n1 = t.sum()
    return float((r[t].sum() - n1 * (n1 + 1) / 2) / (n1 * (~t).sum()))


def _build_screen(name: str, cfg: DemoConfig):
    """``(screen, truth [n, n] bool, groups or None)``; ``cfg``'s size options apply to the chosen screen only."""
    import jax

    import pairint_jax as pj

    key = jax.random.key(cfg.seed)
    kwargs = {}
    if name == cfg.screen:
        if cfg.n_per_condition is not None:
            kwargs["n_per_condition"] = cfg.n_per_condition
        if cfg.dim is not None:
            kwargs["dim"] = cfg.dim
    if name == "latent-factor":
        kwargs.setdefault("n_per_condition", 150)
        screen, truth, model = pj.synthetic.latent_factor(key, cfg.n_perturbations, return_model=True, **kwargs)
        groups = {p: (f"module {m + 1}" if m >= 0 else "loners") for p, m in zip(screen.perturbations, model.module)}
        return screen, np.asarray(truth), groups
    if name == "d11":
        kwargs.setdefault("n_per_condition", 2000)
        screen, truth = pj.synthetic.separability_tabular(key, **kwargs)
    else:
        kwargs.setdefault("n_per_condition", 500)
        screen, truth = pj.synthetic.disjointedness_mixture(key, **kwargs)
    return screen, np.asarray(truth), None


def _runs(cfg: DemoConfig):
    """``(file stem, title, test, screen name, score function(screen, key))`` of every headline score."""
    import pairint_jax as pj

    def where(test):
        return cfg.screen if cfg.screen in APPLIES[test] else APPLIES[test][0]

    runs = []
    disj = where("disjointedness")
    for kernel, label in (("rbf", "RBF"), ("matern52", "Matern-2.5")):
        runs.append((f"disjointedness_{kernel}", f"Disjointedness, {label} kernel (MMD²)", "disjointedness", disj,
                     lambda s, k, kernel=kernel: pj.disjointedness_scores(
                         s, kernel=kernel, n_permutations=cfg.permutations, key=k, progress=cfg.progress)))
    runs.append(("additivity", "Additivity ||Δ_ij - Δ_i - Δ_j|| (control-centred means)", "additivity",
                 where("additivity"), lambda s, k: pj.additivity_scores(s)))
    sep = where("separability")
    runs.append(("separability_knn", "Separability, k-NN KL (k = 1)", "separability", sep,
                 lambda s, k: pj.separability_scores(s, estimator="knn", progress=cfg.progress)))
    if cfg.nre:
        runs.append(("separability_nre", f"Separability, neural ratio estimator + SMILE ({cfg.nre_epochs} epochs)",
                     "separability", sep, lambda s, k: pj.separability_scores(
                         s, estimator="nre", epochs=cfg.nre_epochs, batch_size=256, learning_rate=3e-3, key=k,
                         progress=cfg.progress)))
    return runs


class _Timer:
    def __init__(self, timings: dict, echo):
        self.timings, self.echo = timings, echo

    def __call__(self, name: str):
        self.name = name
        return self

    def __enter__(self):
        self.t = time.perf_counter()
        self.echo(f"[demo] {self.name} ...")

    def __exit__(self, *exc):
        self.timings[self.name] = time.perf_counter() - self.t
        self.echo(f"[demo] {self.name}: {self.timings[self.name]:.1f} s")


def _true_pairs(screen, truth):
    iu, ju = np.triu_indices(screen.n_perturbations, 1)
    return [(screen.perturbations[i], screen.perturbations[j]) for i, j in zip(iu, ju) if truth[i, j]]


def _score_all(cfg, out, screens, step, timings, metrics, echo):
    """Run every headline score; returns ``(results, summary rows, sections)``."""
    import jax

    from pairint_jax.export import save_scores
    from pairint_jax.report import score_section

    results, rows, sections = {}, [], []
    for name, title, test, where, fn in _runs(cfg):
        screen, truth, groups = screens[where]
        truth_pairs = _true_pairs(screen, truth)
        with step(f"score {name} on {where}"):
            res = fn(screen, jax.random.key(cfg.seed))
        seconds = timings[f"score {name} on {where}"]
        results[name] = res
        paths = save_scores(res, out, name, title=f"{title}, {where} screen", groups=groups, highlight=truth_pairs,
                            highlight_label="true interaction", provenance={"demo_screen": where, "seed": cfg.seed})
        iu, ju = np.triu_indices(screen.n_perturbations, 1)
        auc = _auroc(res.matrix[iu, ju], truth[iu, ju])
        k = max(len(truth_pairs), 1)
        hit = len({tuple(sorted(p)) for p in zip(res.top(k).a, res.top(k).b)} & {tuple(sorted(p)) for p in truth_pairs})
        metrics[f"auroc_{name}"] = auc
        rows.append({"score": title, "screen": where, "seconds": seconds, "AUROC vs truth": auc,
                     "true pairs in the top k (k = number of true pairs)": f"{hit}/{len(truth_pairs)}"})
        text = (f"Screen: {where} ({SCREENS[where][1]}); {len(truth_pairs)} truly interacting pairs, outlined in red. "
                f"{int(np.isfinite(res.score).sum())} pairs scored in {seconds:.1f} s. AUROC against the truth: "
                f"{auc:.3f}; {hit} of the {len(truth_pairs)} true pairs are in the top {k}.")
        if test == "disjointedness" and cfg.permutations:
            text += (f" p-values come from {cfg.permutations} permutations, so the smallest attainable p-value is "
                     f"1/{cfg.permutations + 1} = {1 / (cfg.permutations + 1):.4f}.")
        sections.append(score_section(res, name, paths, title=title, text=text, top=10))
        echo(f"  AUROC {auc:.3f}; top pairs:\n" + res.top(5).to_string(index=False))
    return results, rows, sections


def run_demo(out_dir: str | pathlib.Path, config: DemoConfig | None = None, *, echo: Callable[[str], None] = print) -> dict:
    """Run the demo and write its outputs into ``out_dir``.

    Returns:
      A dict with the report paths, per-step timings, headline metrics and the results.
    """
    import jax
    import pandas as pd

    import pairint_jax as pj
    from pairint_jax.export import write_json, write_table
    from pairint_jax.report import Section, settings_table, write_report
    from pairint_jax.results import provenance

    cfg = config or DemoConfig()
    if cfg.screen not in SCREENS:
        raise ValueError(f"unknown demo screen {cfg.screen!r}; choose from {sorted(SCREENS)}.")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    step = _Timer(timings, echo)

    needed = [cfg.screen] + [w for *_, w, _ in _runs(cfg) if w != cfg.screen]
    screens = {}
    for name in dict.fromkeys(needed):
        with step(f"build screen {name}"):
            screens[name] = _build_screen(name, cfg)
        echo(screens[name][0].summary())
    results, rows, score_sections = _score_all(cfg, out, screens, step, timings, metrics, echo)

    summary = pd.DataFrame(rows)
    prov = provenance(seed=cfg.seed, demo=dataclasses.asdict(cfg))
    write_table(summary, out / "summary.csv", {"what": "headline: each score on a screen where its question applies",
                                               "provenance": prov})
    sections = [_screens_section(cfg, screens)]
    sections.append(Section("Summary", "Each score on a screen where its question is the planted truth: how well it "
                            "ranks the truly interacting pairs.\n\n" + _READING, tables=[("Scores", summary)]))
    sections += score_sections
    if cfg.discovery:
        latent = screens.get("latent-factor", screens[cfg.screen])
        sections.append(_discovery_section(pj, cfg, latent, results["disjointedness_rbf"], out, step, metrics, echo, prov))

    settings = dataclasses.asdict(cfg)
    main = screens[cfg.screen][0]
    effective = {"n_per_condition": int(np.median(main.counts)), "dim": int(np.prod(main.feature_shape)),
                 "rounds": metrics.get("discovery_rounds")}
    for k, v in effective.items():  # show what a None ("the default") resolved to in this run
        if settings.get(k) is None and v is not None:
            settings[k] = f"{v} (default)"
    settings["device"] = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind})"
    timing_df = pd.DataFrame({"step": [*timings, "total"], "seconds": [*timings.values(), sum(timings.values())]})
    sections.append(Section("Settings, provenance and timings", "Everything needed to reproduce this run "
                            "(pairint demo with the same flags gives the same numbers).",
                            tables=[("Settings", settings_table(settings)), ("Provenance", settings_table(prov, skip=("demo",))),
                                    ("Timings (first calls include JIT compilation)", timing_df)]))
    paths = write_report(out, "pairint demo report", sections,
                         subtitle=f"{time.strftime('%Y-%m-%d %H:%M')} · device {settings['device']} · pairint_jax {pj.__version__}")
    write_json(out / "metrics.json", {"timings": timings, "metrics": metrics, "provenance": prov})
    return {"report": paths, "timings": timings, "metrics": metrics, "results": results}


def _screens_section(cfg, screens):
    from pairint_jax.report import Section

    lines = [f"The demo builds {len(screens)} synthetic screen(s) (seed {cfg.seed}); the chosen one is "
             f"'{cfg.screen}'. Each score runs on a screen where its question is the planted truth:"]
    for test, where in APPLIES.items():
        lines.append(f"**{test}** on {', '.join(w for w in where if w in screens)}.")
    for name, (screen, truth, _) in screens.items():
        lines.append(f"**{name}**: {SCREENS[name][1]}. " + screen.summary().replace("\n", " ")
                     + f" {len(_true_pairs(screen, truth))} truly interacting pairs (known because the screen is synthetic).")
    return Section("The screens", "\n\n".join(lines))


def _discovery_section(pj, cfg, screen, mmd, out, step, metrics, echo, prov):
    """Active discovery on a disjointedness score matrix (paper Fig. 6)."""
    import jax
    import pandas as pd

    from pairint_jax.export import write_table
    from pairint_jax.pl import POLICY_NAMES, discovery_curves
    from pairint_jax.report import Section

    key = jax.random.key(cfg.seed)
    screen_obj, truth, _ = screen
    if screen_obj.n_perturbations >= cfg.discovery_min_n:
        reward, where = mmd.matrix, "the disjointedness (RBF) scores of the latent-factor screen above"
    else:
        # With few perturbations a budget that leaves anything to choose is tiny; the low-rank posterior needs
        # ~25% of the pairs before it beats random, so the demo uses a larger screen of the same generator here.
        with step(f"discovery screen ({cfg.discovery_min_n} perturbations)"):
            big, big_truth = pj.synthetic.latent_factor(key, cfg.discovery_min_n, n_per_condition=100)
            reward = pj.disjointedness_scores(big, n_permutations=0, key=key, progress=cfg.progress).matrix
        truth = np.asarray(big_truth)
        where = (f"the disjointedness (RBF) scores of a larger latent-factor screen ({cfg.discovery_min_n} "
                 f"perturbations, 100 observations per condition; the screen above has only {screen_obj.n_perturbations}, "
                 "too few pairs for a budget that leaves anything to choose)")
    n = reward.shape[0]
    n_pairs = n * (n - 1) // 2
    rounds = cfg.rounds or max(1, int(0.35 * n_pairs) // cfg.batch)
    metrics["discovery_rounds"] = rounds
    with step("discovery simulation"):
        sims = pj.simulate_many(reward, cfg.policies, rounds=rounds, batch=cfg.batch, seeds=cfg.seeds,
                                steps=cfg.svi_steps, num_samples=cfg.posterior_samples, key=key, known=truth,
                                progress=cfg.progress)
    discovery_curves(sims, save=out / "discovery.png", dpi=130, title=f"Active discovery on {n} perturbations ({n_pairs} pairs)")
    rows, mid = [], max(0, rounds // 2 - 1)
    for policy, res in sims.items():
        top5, kf = np.asarray(res.top5_fraction), np.asarray(res.known_found)
        rows.append({"policy": policy, "name": POLICY_NAMES.get(policy, policy),
                     f"top-5% found, round {mid + 1}": top5[:, mid].mean(),
                     f"top-5% found, round {rounds} (mean)": top5[:, -1].mean(),
                     "(min-max)": f"{top5[:, -1].min():.2f}-{top5[:, -1].max():.2f}",
                     "reward gap to the oracle": np.asarray(res.regret)[:, -1].mean(),
                     "regret vs best remaining": np.asarray(res.regret_remaining)[:, -1].mean(),
                     "true interactions found": kf[:, -1].mean()})
        metrics[f"top5_{policy}"] = float(top5[:, -1].mean())
    table = pd.DataFrame(rows)
    write_table(table, out / "discovery.csv", {"reward": where, "rounds": rounds, "batch": cfg.batch,
                                               "seeds": cfg.seeds, "provenance": prov})
    echo(table.to_string(index=False))
    budget = rounds * cfg.batch
    names = ", ".join(f"{p} = {POLICY_NAMES.get(p, p)}" for p in cfg.policies)
    rank = next(iter(sims.values())).settings["rank"]
    return Section(
        "Choosing pairs to run next (active discovery)",
        f"Suppose only {budget} of the {n_pairs} doubles ({100 * budget / n_pairs:.0f}%) could be measured. The unknown "
        f"reward is {where}. Each policy picks {cfg.batch} pairs per round for {rounds} rounds ({cfg.seeds} seeds; lines "
        f"are means over seeds, bands min-max); the first round is random.\n\nPolicies: {names}. IDS, UCB, TS and US use "
        f"a rank-{rank} low-rank posterior fitted by SVI ({cfg.svi_steps} steps, {cfg.posterior_samples} samples; the library "
        "default is 5,000 and 1,000). 'true interactions found' counts the planted interacting pairs among those chosen."
        "\n\nTwo regrets, so that neither misleads. The paper's regret is the oracle's cumulative reward minus the "
        f"policy's, where the oracle takes the {cfg.batch} best pairs every round; it is a reward gap, and it can fall "
        "once the oracle has used up the best pairs while the policy still finds them. 'Regret vs best remaining' compares "
        f"each round with the {cfg.batch} best pairs the policy had not measured yet, and never falls.",
        tables=[("Discovery after the budget", table)],
        figures=[("Fraction of top-5% pairs found, reward gap to the oracle and true interactions found, per round",
                  "discovery.png")],
    )
