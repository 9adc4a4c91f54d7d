"""Reports: campaign and project figures, exact and fast (issue 5).

periods turns dates into instants and knows their geometry (whole hours, local
midnights); scope names what is reported on; hours is the one reader that splits a
period into rollup hours and raw edges; counts (events and outcomes), people
(unique users, with people_cells' counters for the list), clicks (the ranking),
devices and measurable hold the SQL of each figure; ingredients is what they fill;
campaign and project assemble the reports, campaign_list what the list page shows,
csv writes them safely. The API and the CLI only call ``campaign.build`` and
``project.build``.
"""
