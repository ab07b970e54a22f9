"""Every log line on an operation's path through the outbox names the operation."""

from __future__ import annotations

import json
import logging

import pytest
from eth_account import Account

from ledger.alliance import Alliance
from ledger.logs import ContextFilter, JsonFormatter, TextFormatter, operations
from ledger.merchants.service import admit_merchant
from ledger.points.service import request_issue
from ledger.runtime import outbox_worker
from ledger.settings import Settings


def test_a_log_line_inside_an_operations_context_carries_its_ids() -> None:
    record = logging.LogRecord("ledger.x", logging.WARNING, __file__, 1, "stuck %s", ("tx",),
                               None)
    with operations(["op-1"]), operations(["op-2"]):
        ContextFilter().filter(record)
    assert record.operation_ids == ["op-1", "op-2"]  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(record))
    assert line["operation_ids"] == ["op-1", "op-2"] and line["message"] == "stuck tx"
    assert TextFormatter().format(record).endswith("ops=op-1,op-2")
    outside = logging.LogRecord("ledger.x", logging.INFO, __file__, 1, "idle", (), None)
    ContextFilter().filter(outside)
    assert outside.operation_ids == []  # type: ignore[attr-defined]


def test_the_outboxs_lines_about_an_operation_name_it(settings: Settings,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    a = Alliance.open(settings.model_copy(update={"relayer_funding_wei": 0}))
    try:
        m = admit_merchant(a, name="Logged Store", symbol="LOG", rate=1)
        with a.store.session() as s:
            op = request_issue(a, s, merchant_id=m.merchant_id,
                               member=Account.create().address, points=1, order_id="LOG-1")
        caplog.handler.addFilter(ContextFilter())
        with caplog.at_level(logging.INFO, logger="ledger"):
            outbox_worker(a).process_once()
        about = [r for r in caplog.records if "cannot pay" in r.getMessage()]
        assert about, caplog.text
        assert all(op.id in r.operation_ids for r in about)  # type: ignore[attr-defined]
    finally:
        a.close()
