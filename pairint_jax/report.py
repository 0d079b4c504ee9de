"""A small, dependency-free report writer: one self-contained HTML file plus a Markdown twin.

A report is a list of :class:`Section` s, each with a paragraph of text, optional
tables (pandas DataFrames) and optional figures (PNG files). The HTML embeds the PNGs
as base64, so ``report.html`` can be mailed or archived alone; ``report.md`` links the
PNGs next to it. An edge of the library: nothing numerical imports this.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import os
import pathlib

__all__ = ["Section", "write_report"]


@dataclasses.dataclass
class Section:
    """One section of a report.

    Attributes:
      title: the heading.
      text: paragraphs (blank-line separated plain text; ``**bold**`` is kept in Markdown).
      tables: ``(caption, DataFrame)`` pairs.
      figures: ``(caption, png_path)`` pairs.
    """

    title: str
    text: str = ""
    tables: list = dataclasses.field(default_factory=list)
    figures: list = dataclasses.field(default_factory=list)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}.meta{color:#666;font-size:.9em}
"""


def _fmt_table(df, floatfmt: str = "{:.4g}"):
    import pandas as pd

    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].map(lambda v: "–" if pd.isna(v) else floatfmt.format(v))
        elif not pd.api.types.is_numeric_dtype(out[col]):  # mixed columns: missing reads "not applicable"
            out[col] = out[col].map(lambda v: "–" if v is None or (isinstance(v, float) and v != v) else v)
    return out


def _md_table(df) -> str:
    df = _fmt_table(df)
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def write_report(out_dir: str | os.PathLike, title: str, sections: list[Section], *, subtitle: str = "") -> dict[str, str]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``out_dir``.

    Args:
      out_dir: the folder (created if needed); figure paths may be absolute or relative to it.
      title: the report's title.
      sections: the sections, in order.
      subtitle: a line under the title (e.g. the date and device).

    Returns:
      ``{"html": path, "markdown": path}``.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    sub = subtitle or f"generated {stamp}"

    md = [f"# {title}", "", f"_{sub}_", ""]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p class='meta'>{html.escape(sub)}</p>"]
    toc = "".join(f"<li><a href='#s{k}'>{html.escape(s.title)}</a></li>" for k, s in enumerate(sections))
    body.append(f"<ol>{toc}</ol>")
    for k, sec in enumerate(sections):
        md += [f"## {sec.title}", ""]
        body.append(f"<h2 id='s{k}'>{html.escape(sec.title)}</h2>")
        for para in [p.strip() for p in sec.text.split("\n\n") if p.strip()]:
            md += [para, ""]
            esc = html.escape(para)
            while "**" in esc:
                esc = esc.replace("**", "<b>", 1).replace("**", "</b>", 1)
            body.append(f"<p>{esc}</p>")
        for caption, df in sec.tables:
            md += [f"**{caption}**", "", _md_table(df), ""]
            body.append(f"<p><b>{html.escape(caption)}</b></p>")
            body.append(_fmt_table(df).to_html(index=False, border=0, escape=True))
        for caption, png in sec.figures:
            png = pathlib.Path(png)
            path = png if png.is_absolute() else out / png
            rel = os.path.relpath(path, out)
            md += [f"![{caption}]({rel})", "", f"_{caption}_", ""]
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            body.append(
                f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'/>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    html_path = out / "report.html"
    md_path = out / "report.md"
    html_path.write_text(page, encoding="utf-8")
    md_path.write_text("\n".join(md), encoding="utf-8")
    return {"html": str(html_path), "markdown": str(md_path)}
