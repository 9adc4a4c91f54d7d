"""The report pages (issue 6): campaign list, campaign page, project page, CSV tables;
one module each (campaign_list, campaign, project, csv), what they share in common
and filters, signing in and out in signin. This module holds their routes.

Every figure comes from ``tracker.reports.campaign.build`` and ``project.build``,
the functions behind the JSON API and the CLI, so the pages can never disagree
with them; the pages only choose the period and filters, lay the figures out and
draw them, and read the database only through tracker.reports and tracker.store (no
SQL here). The campaign list needs a few figures of every campaign at once: it asks
the reports' own ``people.users_by_group`` for all campaigns in one query (its
"campaign" group, through ``tracker.reports.campaign_list``) and turns them into
figures with ``campaign.row``, and tests hold it equal to the JSON API.

Pages need a session (tracker.web.session); without one they answer 401 with the
sign-in form, never a redirect. Every answer carries ``Content-Security-Policy:
default-src 'self'``; templates autoescape every value.
"""

from __future__ import annotations

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tracker.web.pages.campaign import campaign_page
from tracker.web.pages.campaign_list import campaign_list
from tracker.web.pages.common import HERE
from tracker.web.pages.csv import campaign_csv, project_csv
from tracker.web.pages.project import project_page
from tracker.web.pages.signin import login, login_form, logout

routes = [
    Route("/reports", campaign_list, methods=["GET"]),
    Route("/reports/login", login_form, methods=["GET"]),
    Route("/reports/login", login, methods=["POST"]),
    Route("/reports/logout", logout, methods=["POST"]),
    Route("/reports/project", project_page, methods=["GET"]),
    Route("/reports/project/csv/{table}", project_csv, methods=["GET"]),
    # :path so a campaign id holding "/" still has a page; the CSV route goes first
    Route("/reports/campaigns/{campaign_id:path}/csv/{table}", campaign_csv, methods=["GET"]),
    Route("/reports/campaigns/{campaign_id:path}", campaign_page, methods=["GET"]),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]
