"""Known gene-gene relations for validation: CORUM co-complex pairs.

CORUM's terms do not allow redistributing it inside this package, so nothing is
bundled: pass the path of your own copy (``coreComplexes.txt`` / ``allComplexes.txt``
of CORUM 3.0, or the CORUM 4/5 export).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pairint_jax.datasets._common import user_path

__all__ = ["corum_pairs"]

_GENE_COLUMNS = ("subunits(Gene name)", "subunits_gene_name", "subunits (Gene name)")
_ORGANISM_COLUMNS = ("Organism", "organism")


def corum_pairs(
    path,
    genes: Sequence[str],
    *,
    organism: str | None = "Human",
    max_complex_size: int | None = None,
    as_names: bool = False,
):
    """Unordered gene pairs that share a CORUM complex, restricted to ``genes``.

    Every complex with subunits ``S`` contributes all pairs ``{a, b} ⊂ S ∩ genes``,
    ``a != b``; a pair found in several complexes is returned once. Gene names are the
    ``;``-separated entries of the subunit gene-name column, stripped of spaces; empty
    entries are skipped. Matching is exact (case-sensitive), so old and new symbols of
    one gene do not match: map synonyms first if the screen uses other names.

    Args:
      path: a CORUM complexes table, tab-separated, with a subunit gene-name column
        (``subunits(Gene name)`` in CORUM 3.0, ``subunits_gene_name`` in CORUM 4/5).
      genes: ``[n]`` the screen's gene names (e.g. ``screen.perturbations``).
      organism: keep only complexes of this organism when the table has an organism
        column (``None`` keeps all).
      max_complex_size: skip complexes with more subunits than this (e.g. 50, to leave out
        the ribosome and other large assemblies); default keeps all.
      as_names: return name pairs instead of indices.

    Returns:
      ``[K, 2]`` int64 array of indices ``(i, j)``, ``i < j``, into ``genes``, sorted
      row-major; with ``as_names=True``, a list of ``K`` tuples ``(genes[i], genes[j])``
      in the same order.

    Raises:
      ValueError: the table has no subunit gene-name column, or ``genes`` repeats a name.

    Example:
      >>> pairs = pj.datasets.corum_pairs("coreComplexes.txt", screen.perturbations)
      >>> known = np.zeros((n, n), bool); known[pairs[:, 0], pairs[:, 1]] = True
    """
    genes = [str(g) for g in genes]
    if len(set(genes)) != len(genes):
        dup = sorted({g for g in genes if genes.count(g) > 1})
        raise ValueError(f"genes lists {dup[:5]} more than once; pass each gene once.")
    if max_complex_size is not None and int(max_complex_size) < 2:
        raise ValueError(f"max_complex_size must be >= 2 (a complex needs two subunits), got {max_complex_size!r}.")
    table = pd.read_csv(user_path(path), sep="\t", dtype=str, keep_default_na=False)
    column = next((c for c in _GENE_COLUMNS if c in table.columns), None)
    if column is None:
        raise ValueError(
            f"{path} has no subunit gene-name column (looked for {list(_GENE_COLUMNS)}); columns are "
            f"{list(table.columns)[:10]}. Pass a tab-separated CORUM complexes file."
        )
    org = next((c for c in _ORGANISM_COLUMNS if c in table.columns), None)
    if organism is not None and org is not None:
        table = table[table[org] == organism]
    index = {g: k for k, g in enumerate(genes)}
    found: set[tuple[int, int]] = set()
    for entry in table[column]:
        subunits = {t.strip() for t in str(entry).split(";")} - {""}
        if max_complex_size is not None and len(subunits) > int(max_complex_size):
            continue
        members = sorted(index[s] for s in subunits if s in index)
        found.update(itertools.combinations(members, 2))
    pairs = np.asarray(sorted(found), dtype=np.int64).reshape(-1, 2)
    if as_names:
        return [(genes[i], genes[j]) for i, j in pairs]
    return pairs
