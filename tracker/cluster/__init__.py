"""A local Citus cluster for developers and tests: a coordinator and two workers.

Citus is built from source into the embedded PostgreSQL that the ``pgserver`` wheel
ships (no package of it reaches these machines), once: the built files are cached
under the user's cache directory and copied in again for a fresh venv. The nodes run
on loopback TCP ports, as the unprivileged ``pgserver`` user when started by root,
each in a data directory of its own under one cluster directory.

``source`` finds the Citus source, ``build`` builds and caches it, ``install`` copies
the cached build into the embedded PostgreSQL, ``node`` runs one PostgreSQL server,
``nodes`` makes the cluster of three. ``tracker cluster up|down|status`` drives them.
"""
