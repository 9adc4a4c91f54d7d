"""The tracker: signed open pixel and click redirect, durable journal, PostgreSQL reports.

Data flows one way: a hit at the edge becomes an event in the journal, the
shipper lands it in the store, and reports read the store.
"""

__version__ = "0.1.0"
