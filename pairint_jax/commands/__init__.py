"""Click commands of the ``pairint`` CLI, one module per topic; ``pairint_jax.cli`` registers them.

Each module exposes ``COMMANDS``: a list of ``click.Command`` objects.
"""
