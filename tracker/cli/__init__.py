"""The ``tracker`` command (click: the well-kept standard for Python CLIs).

One module per command group; this module only assembles them."""

from __future__ import annotations

import click

from tracker.cli.demo import demo
from tracker.cli.events import events
from tracker.cli.keys import keys
from tracker.cli.report import report
from tracker.cli.rewrite import rewrite
from tracker.cli.serve import migrate, serve
from tracker.cli.ship import ship
from tracker.cli.smtp import smtp
from tracker.cli.suppressions import suppressions
from tracker.cli.token import token


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tracker")
def main() -> None:
    """Open- and click-tracking service: signed pixel and redirect, reports in PostgreSQL."""


for command in (serve, migrate, ship, demo, token, events, report, rewrite, suppressions,
                keys, smtp):
    main.add_command(command)
