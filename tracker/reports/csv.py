"""CSV form of the reports: the same figures, one table after another, with cells
made safe for spreadsheets (formula injection: a cell starting with = + - @, TAB,
CR or LF, or the full-width ＝ ＋ － ＠ that Japanese spreadsheets read as formula
signs too, is prefixed with a quote, so link URLs and error messages stay text)."""

from __future__ import annotations

import csv as _csv
import io
from typing import Any

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    return "'" + text if text.startswith(_DANGEROUS) else text


def _table(writer: Any, title: str, header: list[str], rows: list[list[Any]]) -> None:
    writer.writerow([title])
    writer.writerow(header)
    for r in rows:
        writer.writerow([cell(v) for v in r])
    writer.writerow([])


SUMMARY_SKIP = {"click_ranking", "error_codes", "days", "schedule_tasks", "filters", "devices"}


def report_csv(report: dict[str, Any]) -> str:
    """Summary, days, schedule tasks (campaign), click ranking, devices and error codes."""
    out = io.StringIO()
    writer = _csv.writer(out, lineterminator="\r\n")
    summary = [(k, v) for k, v in report.items() if k not in SUMMARY_SKIP]
    summary += [(f"filter_{k}", v) for k, v in report.get("filters", {}).items()]
    _table(writer, "summary", ["figure", "value"], [[k, v] for k, v in summary])
    for name in ("days", "schedule_tasks"):
        rows = report.get(name)
        if rows:
            header = list(rows[0])
            _table(writer, name, header, [[r[h] for h in header] for r in rows])
    _table(writer, "click_ranking", ["url", "clicks", "click_users"],
           [[r["url"], r["clicks"], r["click_users"]] for r in report.get("click_ranking", [])])
    if report.get("devices") is not None:
        _table(writer, "devices", ["client", "os", "device_class", "opens", "clicks"],
               [[r["client"], r["os"], r["device_class"], r["opens"], r["clicks"]]
                for r in report["devices"]])
    if "error_codes" in report:
        rows = []
        for e in report["error_codes"]:
            top = e["top_messages"] or [{"message": None, "count": None}]
            for i, m in enumerate(top, 1):
                rows.append([e["category"], e["code"], e["kind"], e["count"], i,
                             m["message"], m["count"]])
        _table(writer, "error_codes",
               ["category", "code", "kind", "count", "message_rank", "message",
                "message_count"], rows)
    return out.getvalue()
