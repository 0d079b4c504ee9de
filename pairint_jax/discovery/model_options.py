"""Settings of the low-rank posterior beyond the named arguments of the entry points, and the
hub-driven preset.

:func:`~pairint_jax.discovery.simulate.simulate`, :func:`~pairint_jax.discovery.simulate.simulate_many`
and :meth:`~pairint_jax.discovery.campaign.Campaign.create` name the common settings (``rank``,
``steps``, ``link``, ``feature_interactions``, ...). ``model_options`` carries the rest of
:class:`~pairint_jax.discovery.posterior.LowRankModel` (:data:`MODEL_OPTIONS`), and may also set
``link`` and ``feature_interactions`` so that one dict, such as :data:`HUB_MODEL`, is a whole
recipe. :func:`split_model_options` checks it once for all three.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["HUB_MODEL", "MODEL_OPTIONS", "split_model_options"]

#: The keys ``model_options`` accepts: fields of ``LowRankModel`` (``link`` and
#: ``feature_interactions`` only while the named argument is left at its default).
MODEL_OPTIONS = ("link", "feature_interactions", "main_effects", "factor_prior", "factor_scale_min",
                 "main_effect_scale_min", "interaction_scale_min", "layout")

#: A model for hub-driven maps with informative singles (such as Norman's |GI| with the singles'
#: fitness): additive main effects on the score's own scale (identity link), the singles'
#: feature interactions, a small factor floor, and floors on the main-effect and interaction
#: prior scales that the mean-field fit otherwise shrinks to almost nothing. IDS with it finds
#: 0.31 of Norman's top-5% pairs by round 50 (the default model: 0.27-0.28); it is not the
#: default because it loses the blocks of synthetic (b) and SLKB |SL|'s signed structure
#: (benchmarks/RESULTS.md, "A model for hub-driven maps"). Needs ``features``.
HUB_MODEL = MappingProxyType(dict(link="identity", feature_interactions=True, factor_scale_min=0.25,
                                  main_effect_scale_min=0.4, interaction_scale_min=0.25))


def split_model_options(link: str, feature_interactions: bool, model_options) -> tuple[str, bool, dict]:
    """``(link, feature_interactions, other fields)`` from the named arguments and ``model_options``.

    Args:
      link: the entry point's ``link`` argument (default ``"auto"``).
      feature_interactions: its ``feature_interactions`` argument (default False).
      model_options: None or a mapping with keys from :data:`MODEL_OPTIONS`.

    Returns:
      The link and feature-interaction setting to use, and a dict of the remaining
      ``LowRankModel`` fields (validated by ``LowRankModel`` itself when it is built).

    Raises:
      ValueError: ``model_options`` is not a mapping, has an unknown key, or sets ``link`` or
        ``feature_interactions`` that the named argument also sets to another value.

    Example:
      >>> split_model_options("auto", False, HUB_MODEL)[0:2]
      ('identity', True)
    """
    if model_options is not None and not hasattr(model_options, "keys"):  # before dict(), whose error is obscure
        raise ValueError(f"model_options must be a dict of LowRankModel settings (e.g. pj.HUB_MODEL), "
                         f"got {type(model_options).__name__}.")
    opts = dict(model_options or {})
    unknown = sorted(set(opts) - set(MODEL_OPTIONS))
    if unknown:
        raise ValueError(f"model_options: unknown setting(s) {unknown}; expected some of {list(MODEL_OPTIONS)} "
                         "(rank, steps, num_samples, offset, standardize, elbo and nonnegative are named arguments).")
    for name, given, default in (("link", link, "auto"), ("feature_interactions", feature_interactions, False)):
        if name in opts and given != default and given != opts[name]:
            raise ValueError(f"{name} is given twice: {given!r} as an argument and {opts[name]!r} in model_options "
                             "(a preset such as pj.HUB_MODEL, or --model hub, sets it).")
    link = opts.pop("link", link)
    feature_interactions = opts.pop("feature_interactions", feature_interactions)
    return link, feature_interactions, opts
