"""CSV downloads of the report pages: each table of a page (or ``all``, the reports'
own CSV) under the filters shown (F21), every cell made safe for spreadsheets."""

from __future__ import annotations

import csv as _csv
import io
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tracker.reports.csv import cell, report_csv
from tracker.reports.options import ReportError
from tracker.web.pages.campaign import campaign_report_for
from tracker.web.pages.common import (
    DAY_COLUMNS,
    ERROR_COLUMNS,
    LINK_COLUMNS,
    PROJECT_DAY_COLUMNS,
    SECURITY_HEADERS,
    TASK_COLUMNS,
    error_rows,
    guarded,
)
from tracker.web.pages.project import project_report_for


def table_csv(header: list[str], rows: list[list[Any]]) -> str:
    """One table, every cell through the reports' formula-injection-safe ``cell``."""
    out = io.StringIO()
    writer = _csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([cell(v) for v in r])
    return out.getvalue()


def _records(rows: list[dict[str, Any]], columns: list[str]) -> list[list[Any]]:
    return [[r.get(c) for c in columns] for r in rows]


def summary_rows(report: dict[str, Any]) -> list[list[Any]]:
    skip = {"days", "schedule_tasks", "click_ranking", "error_codes", "filters", "devices"}
    rows = [[k, v] for k, v in report.items() if k not in skip]
    rows += [[f"filter_{k}", v] for k, v in report.get("filters", {}).items()]
    return rows


def tables_of(report: dict[str, Any],
              kind: str) -> dict[str, tuple[list[str], list[list[Any]]]]:
    day_columns = DAY_COLUMNS if kind == "campaign" else PROJECT_DAY_COLUMNS
    tables = {
        "summary": (["figure", "value"], summary_rows(report)),
        "days": (day_columns, _records(report["days"], day_columns)),
        "links": (LINK_COLUMNS, _records(report["click_ranking"], LINK_COLUMNS)),
        "errors": (ERROR_COLUMNS, error_rows(report)),
    }
    if kind == "campaign":
        tables["tasks"] = (TASK_COLUMNS, _records(report["schedule_tasks"], TASK_COLUMNS))
    return tables


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def csv_response(text: str, name: str) -> Response:
    filename = _UNSAFE_NAME.sub("_", name)[:150] + ".csv"
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8", headers=headers)


def _unknown_table(table: str, known: list[str]) -> ReportError:
    return ReportError(404, "not_found",
                       f"no table {table[:40]!r}; the tables are {', '.join(known)}")


@guarded
async def campaign_csv(request: Request, lang: str) -> Response:
    """A table of the campaign page (or ``all``), under the filters shown (F21)."""
    campaign_id, table = request.path_params["campaign_id"], request.path_params["table"]
    report = await campaign_report_for(request, campaign_id)
    tables = tables_of(report, "campaign")
    name = f"{campaign_id}-{table}-{report['from']}-{report['to']}"
    if table == "all":
        return csv_response(report_csv(report), name)
    if table not in tables:
        raise _unknown_table(table, ["all", *tables])
    return csv_response(table_csv(*tables[table]), name)


@guarded
async def project_csv(request: Request, lang: str) -> Response:
    """A table of the project page (or ``all``), under the filters shown (F21)."""
    table = request.path_params["table"]
    report = await project_report_for(request)
    tables = tables_of(report, "project")
    scope = report["filters"].get("campaign_id") or "project"
    name = f"{scope}-{table}-{report['from']}-{report['to']}"
    if table == "all":
        return csv_response(report_csv(report), name)
    if table not in tables:
        raise _unknown_table(table, ["all", *tables])
    return csv_response(table_csv(*tables[table]), name)
