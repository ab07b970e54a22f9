"""Domain value types shared across the ledger.

They are ``NewType`` aliases: free at run time, but mypy keeps a ``Points`` from
being passed where ``Fen`` is expected.

Where they are made: a value is branded once it is known good — by the checkers of
:mod:`ledger.limits` (``merchant_id``, ``points``, ``address``), by
``points.service.order_ref``, by ``merchants.service.program_of``, and in the views the
capabilities give back (``MerchantView``, ``AdmittedMerchant``, clearing's ``PositionView``
in ``Fen``); the API brands the merchant of its credentials (``Principal.merchant_id``). Each
is an ``int``/``str``/``bytes`` too, so it flows into code that takes the plain type.

Where they are required: every merchant parameter of the capabilities' service functions
(``points``, ``clearing``, ``merchants``) is a ``MerchantId``, so a caller must have checked
the number first — the API's schemas and path parameters brand it after pydantic checks its
bounds, the CLI through ``limits.merchant_id``, the demo from the admitted merchants. The layers
below the services (contract clients, repositories, outbox payloads) take plain ``int``: they
speak the ABI and the database, and only services call them.
"""

from typing import NewType

MerchantId = NewType("MerchantId", int)
"""The registry's sequential id of a merchant (1, 2, …)."""

OrderRef = NewType("OrderRef", bytes)
"""A 32-byte order reference as stored on chain (keccak of the merchant's order id)."""

Points = NewType("Points", int)
"""A whole number of points of one program (programs have 0 decimals)."""

Fen = NewType("Fen", int)
"""An amount in the settlement unit: the integer minor currency unit (e.g. fen)."""

Address = NewType("Address", str)
"""A checksummed 0x-prefixed EVM address."""

TxHash = NewType("TxHash", str)
"""A 0x-prefixed transaction hash."""
