"""Alliance Ledger: the Python core (everything but HTTP)."""

__version__ = "0.1.0"
