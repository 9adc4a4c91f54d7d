"""``tracker smtp``: an SMTP relay that tracks mail from senders that only speak SMTP.

One job per module: :mod:`.settings` reads the relay's configuration,
:mod:`.access` decides which clients may send without AUTH, :mod:`.headers`
reads and removes the ``X-Tracker-*`` headers, :mod:`.tracking` rewrites a
message once per recipient through the same :class:`~tracker.rewrite.send.Sender`
as ``POST /v1/messages`` and records the deliveries only once the upstream took
every copy, :mod:`.upstream` hands the copies to the upstream MTA, :mod:`.pool`
lends the database connections, :mod:`.protocol` reads DATA, :mod:`.handler`
answers the SMTP commands and :mod:`.server` puts it all on a socket.
"""
