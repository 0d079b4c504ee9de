"""The ``pairint`` command line (click). An edge of the library: nothing imports it.

Commands:
  demo      score a built-in synthetic screen with every test, run a discovery
            simulation on the result, and write a report.
  info      describe a screen file (.h5ad / .npz / .parquet).
  score     score every pair of a screen file and write CSV + heatmap PNG.
  propose   suggest the next batch of pairs for a lab campaign.
  observe   record measured pair scores in a lab campaign.
"""

from __future__ import annotations

import click

from pairint_jax.commands import common

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="pairint_jax", prog_name="pairint")
def main() -> None:
    """pairint: find pairwise interactions between perturbations (gene knockouts, drugs,
    guides) directly from unstructured readouts, and choose which pairs to run next.

    \b
    The lab loop:  pairint score screen.h5ad  ->  pairint observe  ->  pairint propose
    Try it first:  pairint demo
    Every command explains its options with --help.
    """


def _register() -> None:
    from pairint_jax.commands import campaign, demo, score

    for module in (common, demo, score, campaign):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
