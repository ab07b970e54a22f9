"""Request and response bodies, one module per capability, with the examples /docs shows.

Bodies are strict: unknown fields are refused, and amounts must be JSON integers (no floats,
no strings). Every bound comes from :mod:`ledger.limits`, the same constants the ledger checks,
so a body the schema takes is one the ledger takes. Import from the submodules
(``from ..schemas.points import IssueRequest``); this package re-exports nothing.
"""
