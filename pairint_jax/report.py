"""Reports: one self-contained ``report.html`` (plus a Markdown twin) from jinja2 templates.

A report is a list of :class:`Section` s, each with paragraphs, notes, tables (pandas
DataFrames) and figures (PNG files). The HTML embeds the PNGs as base64, so ``report.html``
can be mailed or archived alone; ``report.md`` links the PNGs next to it. The templates
live in ``pairint_jax/templates/``; HTML output is autoescaped.

:func:`write_score_report` is what ``pairint score`` writes for a user's own screen, and
:func:`score_section` the per-test section that it and ``pairint demo`` share.

An edge of the library: nothing numerical imports this.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import os
import pathlib
import re
from collections.abc import Iterable, Mapping

import numpy as np

from pairint_jax._validate import as_screen
from pairint_jax.multitest import CORRECTIONS, permutations_needed
from pairint_jax.results import TEST_QUESTIONS

__all__ = ["Section", "write_report", "score_section", "settings_table", "write_score_report"]


@dataclasses.dataclass
class Section:
    """One section of a report.

    Attributes:
      title: the heading.
      text: paragraphs (blank-line separated plain text; ``**bold**`` is rendered bold).
      tables: ``(caption, DataFrame)`` pairs.
      figures: ``(caption, png_path)`` pairs (absolute, or relative to the report folder).
      notes: short highlighted remarks (caveats, warnings).
      code: an optional preformatted block (e.g. the command line).
    """

    title: str
    text: str = ""
    tables: list = dataclasses.field(default_factory=list)
    figures: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    code: str = ""


def _fmt_table(df, floatfmt: str = "{:.4g}"):
    import pandas as pd

    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].map(lambda v: "–" if pd.isna(v) else floatfmt.format(v))
        elif not pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].map(lambda v: "–" if v is None or (isinstance(v, float) and v != v) else v)
    return out


def _md_table(df) -> str:
    df = _fmt_table(df)
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def _environment():
    import jinja2
    from markupsafe import Markup, escape

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pairint_jax", "templates"),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        trim_blocks=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["bold"] = lambda text: Markup(re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", str(escape(text))))
    return env


def write_report(out_dir: str | os.PathLike, title: str, sections: list[Section], *, subtitle: str = "") -> dict[str, str]:
    """Render ``report.html`` (self-contained) and ``report.md`` into ``out_dir``.

    Args:
      out_dir: the folder (created if needed); figure paths may be absolute or relative to it.
      title: the report's title.
      sections: the sections, in order.
      subtitle: a line under the title (default: the date).

    Returns:
      ``{"html": path, "markdown": path}``.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sub = subtitle or f"generated {datetime.datetime.now():%Y-%m-%d %H:%M}"
    rendered = []
    for sec in sections:
        figures = []
        for caption, png in sec.figures:
            png = pathlib.Path(png)
            path = png if png.is_absolute() else out / png
            figures.append({"caption": caption, "path": os.path.relpath(path, out),
                            "data": base64.b64encode(path.read_bytes()).decode("ascii")})
        rendered.append({
            "title": sec.title,
            "paragraphs": [p.strip() for p in sec.text.split("\n\n") if p.strip()],
            "notes": list(sec.notes),
            "tables": [{"caption": c, "html": _fmt_table(df).to_html(index=False, border=0, escape=True),
                        "markdown": _md_table(df)} for c, df in sec.tables],
            "figures": figures,
            "code": sec.code,
        })
    env = _environment()
    html_path, md_path = out / "report.html", out / "report.md"
    context = {"title": title, "subtitle": sub, "sections": rendered}
    html_path.write_text(env.get_template("report.html.j2").render(**context), encoding="utf-8")
    md_path.write_text(env.get_template("report.md.j2").render(**context), encoding="utf-8")
    return {"html": str(html_path), "markdown": str(md_path)}


# ----------------------------------------------------------------------------- score reports
def _short(value, limit: int = 160) -> str:
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}: {_short(v, 40)}" for k, v in list(value.items())[:12])
        text = "{" + text + (", ..." if len(value) > 12 else "") + "}"
    elif isinstance(value, np.ndarray):
        text = f"array{list(value.shape)}"
    elif value is None:
        text = "–"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def settings_table(settings: Mapping, *, skip: Iterable[str] = ("provenance",)):
    """A two-column DataFrame ``setting, value`` (values shortened for reading)."""
    import pandas as pd

    items = [(k, v) for k, v in settings.items() if k not in set(skip)]
    return pd.DataFrame({"setting": [str(k) for k, _ in items], "value": [_short(v) for _, v in items]})


def _negative_notes(res) -> list[str]:
    notes = []
    score = np.asarray(res.score, np.float64)
    neg = int(np.sum(score < 0))
    if res.test == "disjointedness" and neg:
        notes.append(
            f"{neg} pair(s) have a negative MMD². This is expected: the estimator is unbiased, so when the two "
            "mixtures are equal its values scatter around 0 and fall below it about half the time. Read a negative "
            "score as no evidence of interaction; the p-value is the test."
        )
    kls = res.settings.get("condition_kl") if res.test == "separability" else None
    if kls:
        bad = sorted(k for k, v in kls.items() if v is not None and float(v) < 0)
        if bad:
            notes.append(
                f"The KL estimate from the control is negative for {len(bad)} condition(s) ({', '.join(bad[:8])}"
                f"{', ...' if len(bad) > 8 else ''}). A true KL divergence is never negative: this is the estimator's "
                "finite-sample bias (k-NN estimates scatter around the truth and SMILE clips the log-ratios), and such "
                "conditions are indistinguishable from the control at this sample size."
            )
    return notes


def score_section(res, name: str, paths: Mapping[str, os.PathLike], *, title: str | None = None, text: str = "",
                 alpha: float = 0.05, top: int = 10, pairs_figure: os.PathLike | None = None) -> Section:
    """The report section of one test: what it asks, counts, caveats, the top pairs and the figures.

    Args:
      res: the :class:`~pairint_jax.PairScores`.
      name: the file stem its CSV/JSON/PNG were saved under (see :func:`~pairint_jax.save_scores`).
      paths: what :func:`~pairint_jax.save_scores` returned.
      title: the heading (default the test's name).
      text: paragraphs to put after the question (e.g. accuracy against a known truth).
      alpha: the level of ``significant``.
      top: rows of the top-pairs table.
      pairs_figure: an extra PNG (volcano or ranked dots).
    """
    import pandas as pd

    df = pd.read_csv(paths["csv"], keep_default_na=False, na_values=[""])
    measured, scored = int(res.is_measured.sum()), int(np.isfinite(res.score).sum())
    lines = [f"**What it asks.** {TEST_QUESTIONS[res.test]}" if res.test in TEST_QUESTIONS else ""]
    count = f"{measured} measured pair(s), {scored} scored."
    if "significant" in df.columns:
        count += (f" {int(df['significant'].sum())} significant at alpha = {alpha:g} "
                  f"({CORRECTIONS[res.correction]} q-values over the {int(np.isfinite(df['q_value']).sum())} tested pairs).")
    lines += [count, text]
    notes = _negative_notes(res)
    if "p_floor" in df.columns and df["p_floor"].any():
        b = res.settings.get("n_permutations")
        m = int(np.isfinite(df["q_value"]).sum())
        notes.append(f"{int(df['p_floor'].sum())} pair(s) sit at the smallest attainable p-value 1/(B+1) = "
                     f"{1 / (int(b) + 1):.3g} (B = {b} permutations; column p_floor): their true p-values may be "
                     f"smaller. For one pair among {m} to be rejectable at alpha = {alpha:g}, use n_permutations >= "
                     f"{permutations_needed(m, alpha)}.")
    tables = [(f"Top {top} pairs (all rows: {pathlib.Path(paths['csv']).name})", res.top(top, alpha=alpha))]
    failed = res.is_measured & ~np.isfinite(res.score)
    why = pd.Series(np.asarray(res.reason, dtype=object)[failed], dtype=object).value_counts()
    if len(why):
        tables.append(("Measured pairs that could not be scored", why.rename_axis("reason").reset_index(name="pairs")))
    # absolute paths: the caller's paths are relative to the working directory, not to the report
    figures = [(f"{title or res.test}: heatmap", pathlib.Path(paths["png"]).resolve())] if "png" in paths else []
    if pairs_figure is not None:
        figures.append((f"{title or res.test}: each scored pair", pathlib.Path(pairs_figure).resolve()))
    return Section(title or res.test, "\n\n".join(p for p in lines if p), tables=tables, figures=figures, notes=notes)


def write_score_report(
    results,
    out_dir: str | os.PathLike,
    *,
    screen=None,
    title: str = "pairint report",
    alpha: float = 0.05,
    all_pairs: bool = False,
    top: int = 10,
    groups=None,
    highlight: Iterable[tuple[str, str]] = (),
    provenance: Mapping | None = None,
    command: str = "",
) -> dict[str, object]:
    """Write every test's CSV, JSON and figures and a ``report.html`` about them into ``out_dir``.

    This is what ``pairint score`` writes; call it on your own results in Python too.

    Args:
      results: a :class:`~pairint_jax.PairScores`, a sequence of them, or ``{name: PairScores}``
        (the names become the file stems).
      out_dir: the folder (created if needed).
      screen: the :class:`~pairint_jax.Screen` they came from: adds its summary and the
        observed-vs-expected plot.
      title: the report's title.
      alpha: the level of the ``significant`` columns.
      all_pairs: list every pair in the CSVs, not only the measured ones.
      top: rows of each top-pairs table.
      groups, highlight: ordering and outlined pairs of the heatmaps.
      provenance: extra provenance entries for every JSON (e.g. the input file).
      command: the command line, shown in the report.

    Returns:
      ``{"report": {"html": ..., "markdown": ...}, "files": {name: {"csv": ..., "json": ..., "png": ...}}}``.
    """
    from pairint_jax.export import save_scores
    from pairint_jax.pl import observed_vs_expected, ranked, volcano

    if isinstance(results, Mapping):
        items = list(results.items())
    elif hasattr(results, "score"):
        items = [(results.test or "scores", results)]
    else:
        items = [(r.test or f"scores{k}", r) for k, r in enumerate(results)]
    if screen is not None:
        screen = as_screen(screen, caller="write_score_report")
    out = pathlib.Path(out_dir)
    sections, files = [], {}
    intro = screen.summary().replace("\n", " ") if screen is not None else ""
    intro += "\n\nEach section below says what its test asks, how many pairs it scored and which pairs stand out."
    sections.append(Section("The screen", intro, code=command))
    for name, res in items:
        paths = save_scores(res, out, name, title=name, alpha=alpha, all_pairs=all_pairs, groups=groups,
                            highlight=highlight, provenance=provenance)
        files[name] = paths
        extra = out / f"{name}_pairs.png"
        if np.isfinite(res.score).any():
            plot = volcano if "q_value" in res.columns and np.isfinite(res.columns["q_value"]).any() else ranked
            plot(res, alpha=alpha, highlight=highlight, save=extra, dpi=110)
        else:
            extra = None
        sections.append(score_section(res, name, paths, alpha=alpha, top=top, pairs_figure=extra))
    if screen is not None and len(screen.pairs):
        colour = next((r for _, r in items if r.test == "additivity"), items[0][1] if items else None)
        observed_vs_expected(screen, colour, highlight=highlight, save=out / "observed_vs_expected.png", dpi=110)
        sections.append(Section(
            "Observed against expected shifts",
            "Each dot is a scorable pair: its double's mean shift from the control, Δ_ij, against the sum of its "
            "singles' shifts, Δ_i + Δ_j, both projected on the pair's expected shift. Pairs on the dashed diagonal add "
            "up; above it the double moves further than the sum, below it less.",
            figures=[("Observed vs expected shift from control", "observed_vs_expected.png")],
        ))
    prov = {**dict(items[0][1].settings.get("provenance", {})), **dict(provenance or {})} if items else dict(provenance or {})
    tables = [(f"Settings: {name}", settings_table(res.settings)) for name, res in items]
    tables.append(("Provenance", settings_table(prov, skip=())))
    sections.append(Section("Settings and provenance", "Everything needed to reproduce these numbers; each CSV has "
                            "a JSON next to it with the same information.", tables=tables))
    report = write_report(out, title, sections)
    return {"report": report, "files": files}
