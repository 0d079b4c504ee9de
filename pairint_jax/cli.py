"""The ``pairint`` command line (click). An edge of the library: nothing imports it.

Commands:
  demo      score a built-in synthetic screen with every test, run a discovery
            simulation on the result, and write a report.
  info      describe a screen file (.h5ad / .npz / .parquet).
  score     score every pair of a screen file and write CSV + heatmap PNG.
  features  per-perturbation features of a (singles) screen file, as a features CSV.
  propose   suggest the next batch of pairs for a lab campaign.
  observe   record measured pair scores in a lab campaign.
"""

from __future__ import annotations

import click

from pairint_jax.commands import common

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Pairint(click.Group):
    """The command group with the one error handler of the CLI.

    Any exception a command lets through becomes ONE line on stderr (``Error: ...``,
    naming the file or parameter and the fix; see :func:`~pairint_jax.commands.common.describe_error`)
    and exit code 1; ``--debug`` shows the traceback instead. ``KeyboardInterrupt`` gives
    exit code 130. (The ``pairint`` program itself handles Ctrl-C before Python can raise
    ``KeyboardInterrupt``: see ``_pairint_entry``.)
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("\npairint: interrupted (Ctrl-C).", err=True)
            ctx.exit(common.INTERRUPTED)
        except Exception as err:
            if common.debugging():
                raise
            raise click.ClickException(common.describe_error(err)) from err


@click.group(cls=_Pairint, context_settings=CONTEXT)
@click.version_option(package_name="pairint_jax", prog_name="pairint")
@click.option("--debug", is_flag=True, default=False, envvar="PAIRINT_DEBUG",
              help="On an error, show the full Python traceback instead of the one-line message.")
def main(debug: bool) -> None:
    """pairint: find pairwise interactions between perturbations (gene knockouts, drugs,
    guides) directly from unstructured readouts, and choose which pairs to run next.

    \b
    The lab loop:  pairint score screen.h5ad  ->  pairint observe  ->  pairint propose
    Try it first:  pairint demo
    Every command explains its options with --help.
    Errors are one line; `pairint --debug COMMAND ...` shows the traceback.
    """


def _register() -> None:
    from pairint_jax.commands import campaign, demo, features, score

    for module in (common, demo, score, features, campaign):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    from _pairint_entry import main as _run

    _run()
