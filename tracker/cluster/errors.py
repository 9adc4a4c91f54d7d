"""The one error of the local cluster: what is wrong, and how to fix it."""

from __future__ import annotations


class ClusterError(Exception):
    """The cluster cannot be built, started or stopped; the message names the cause
    and the fix (a path to give, a variable to set, a Debian package to install)."""
