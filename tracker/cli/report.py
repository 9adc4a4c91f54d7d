"""``tracker report campaign|project``: the reports as a table, JSON or CSV.

The same option checks and builders as the API, so the CLI and the API can never
disagree on a figure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tracker.cli.database import connect, database_url, migrate_or_exit, settings_or_exit
from tracker.reports import campaign as campaign_report
from tracker.reports import project as project_report
from tracker.reports.csv import report_csv
from tracker.reports.options import Builder, ReportError, options

LISTS = ("days", "schedule_tasks", "click_ranking", "error_codes", "filters")

_Command = TypeVar("_Command", bound=Callable[..., Any])


def _run(builder: Builder, params: dict[str, str | None]) -> dict[str, Any]:
    settings = settings_or_exit()
    dsn = database_url(settings)
    migrate_or_exit(dsn)
    try:
        opts = options(params, settings.timezone)
    except ReportError as exc:
        raise click.BadParameter(exc.detail) from None

    async def fetch() -> dict[str, Any]:
        async with connect(dsn) as conn:
            return await builder(conn, opts)

    try:
        return asyncio.run(fetch())
    except ReportError as exc:
        raise click.ClickException(exc.detail) from None


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2%}"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.rjust(widths[c]) for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).rjust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _show(report: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    if fmt == "csv":
        click.echo(report_csv(report), nl=False)
        return
    summary = [k for k in report if k not in LISTS]
    width = max(len(k) for k in summary)
    for key in summary:
        click.echo(f"{key.ljust(width)}  {_fmt(report[key])}")
    for name, first in (("schedule_tasks", "schedule_task_id"), ("days", "date")):
        rows = [r for r in report.get(name, []) if any(
            r.get(k) for k in ("targets", "opens", "clicks", "unsubscribes"))]
        if rows:
            columns = [first, "targets", "deliveries", "opens", "open_users", "clicks",
                       "click_users", "bounces", "unsubscribes"]
            click.echo(f"\n{name} (with activity)\n" + _table(rows, columns))
    if report.get("click_ranking"):
        click.echo("\nclick ranking\n"
                   + _table(report["click_ranking"], ["clicks", "click_users", "url"]))
    if report.get("error_codes"):
        rows = [{**e, "top_message": (e["top_messages"] or [{}])[0].get("message")}
                for e in report["error_codes"]]
        click.echo("\nerror codes\n"
                   + _table(rows, ["category", "code", "kind", "count", "top_message"]))


def _common(f: _Command) -> _Command:
    for option in reversed([
        click.option("--from", "from_", required=True, help="first day, YYYY-MM-DD"),
        click.option("--to", required=True, help="last day, YYYY-MM-DD (inclusive)"),
        click.option("--task", "schedule_task_id", help="only this schedule task"),
        click.option("--channel", type=click.Choice(["email", "push", "line"])),
        click.option("--include-bots", is_flag=True,
                     help="count machine opens and bot clicks among people"),
        click.option("--links", default=100, show_default=True, type=click.IntRange(1, 10_000),
                     help="rows of the click ranking"),
        click.option("--format", "fmt", default="table", show_default=True,
                     type=click.Choice(["table", "json", "csv"])),
    ]):
        f = option(f)
    return f


def _params(from_: str, to: str, schedule_task_id: str | None, channel: str | None,
            include_bots: bool, links: int, **extra: str | None) -> dict[str, str | None]:
    return {"from": from_, "to": to, "schedule_task_id": schedule_task_id, "channel": channel,
            "include_bots": "true" if include_bots else "false", "links": str(links), **extra}


@click.group()
def report() -> None:
    """Campaign and project reports (dates are in TRACKER_TIMEZONE)."""


@report.command("campaign")
@click.argument("campaign_id")
@_common
def campaign_cmd(campaign_id: str, fmt: str, **kwargs: Any) -> None:
    """The report of one campaign."""
    _show(_run(campaign_report.build, _params(campaign_id=campaign_id, **kwargs)), fmt)


@report.command("project")
@click.option("--campaign", "campaign_id", help="only this campaign")
@_common
def project_cmd(campaign_id: str | None, fmt: str, **kwargs: Any) -> None:
    """The report of the whole project (or one campaign), with error codes."""
    _show(_run(project_report.build, _params(campaign_id=campaign_id, **kwargs)), fmt)
