"""Reports: campaign and project figures, exact and fast (issue 5).

periods turns dates into instants, scope names what is reported on, figures holds
the SQL (rollups for whole hours, raw events for the rest), campaign and project
assemble the reports, csv writes them safely. The API and the CLI only call
``campaign.build`` and ``project.build``.
"""
