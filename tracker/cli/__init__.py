"""The ``tracker`` command (click: the well-kept standard for Python CLIs).

One module per command group; this module only assembles them, by name: a command's
module is imported when that command runs (click's documented lazy-loading group),
so ``tracker token`` does not import the demo, the relay and the rewriter first
(a third of a second for each run of a short command)."""

from __future__ import annotations

import importlib

import click

#: command name -> "module:attribute" of its click command
COMMANDS = {
    "serve": "tracker.cli.serve:serve",
    "migrate": "tracker.cli.serve:migrate",
    "ship": "tracker.cli.ship:ship",
    "demo": "tracker.cli.demo:demo",
    "token": "tracker.cli.token:token",
    "events": "tracker.cli.events:events",
    "report": "tracker.cli.report:report",
    "rewrite": "tracker.cli.rewrite:rewrite",
    "suppressions": "tracker.cli.suppressions:suppressions",
    "keys": "tracker.cli.keys:keys",
    "smtp": "tracker.cli.smtp:smtp",
    "cluster": "tracker.cli.cluster:cluster",
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tracker")
def main() -> None:
    """Open- and click-tracking service: signed pixel and redirect, reports in PostgreSQL."""
