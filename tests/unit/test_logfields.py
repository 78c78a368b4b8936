"""Structured log fields: a scheduler pass's records carry the object it works on, and tasks it starts add theirs."""

from __future__ import annotations

import asyncio
import json
import logging

from pythonjsonlogger.json import JsonFormatter

from tenure.runtime.logfields import Fields, bind
from tenure.runtime.scheduler import Scheduler


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []
        self.addFilter(Fields())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_records_carry_the_tenant_and_the_datastore_as_fields() -> None:
    logger = logging.getLogger("tenure.test.logfields")
    captured = Captured()
    logger.addHandler(captured)
    logger.setLevel(logging.INFO)

    async def purge() -> None:
        bind(datastore="litellm")
        logger.info("purged rows")

    async def reconcile(name: str) -> None:
        logger.info("deciding")
        await asyncio.create_task(purge())
        logger.info("decided")

    async def main() -> None:
        scheduler = Scheduler("tenants", reconcile, workers=2)  # type: ignore[arg-type]
        scheduler.touch("acme")
        await scheduler.step()
        while scheduler.busy():
            await asyncio.sleep(0)
        logger.info("outside any pass")

    try:
        asyncio.run(main())
    finally:
        logger.removeHandler(captured)
    fields = [(line["message"], line.get("tenant"), line.get("datastore")) for line in captured.lines]
    assert fields == [
        ("deciding", "acme", None),
        ("purged rows", "acme", "litellm"),
        ("decided", "acme", None),  # the purge's field stays in its own task
        ("outside any pass", None, None),
    ]
