"""List, then watch from the listing's resourceVersion: the small kinds, kept current in the stores.

A watch that starts from its own fresh listing misses what was deleted
between an earlier listing and that one; an informer continues from the
resourceVersion of the listing the stores were filled from, so every change
after it arrives as an event. The watch is ended by the API server after
``period`` seconds and the kind is listed again (dropping anything a watch
could not deliver), and again at once when the API server answers 410 (the
resourceVersion is too old to continue from).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from tenure.effects.errors import Expired
from tenure.effects.kube import Kube

from .store import Changes, Kind

logger = logging.getLogger(__name__)

RETRY = 5.0
"""Seconds before watching or listing again after a failure."""

Changed = Callable[[str, Changes], None]
"""Told the kind (plural) and what changed in the stores."""


class Informer:
    def __init__(self, kube: Kube, plural: str, store: Kind[Any], period: float) -> None:
        self.kube = kube
        self.plural = plural
        self.store = store
        self.period = period
        self.version = ""
        self.changed: Changed = lambda plural, changes: None

    async def list(self) -> None:
        """Replace the stored objects with a fresh listing; the watch continues from its resourceVersion."""
        items, self.version = await self.kube.listing(self.plural)
        self.changed(self.plural, self.store.replace(items))

    async def run(self) -> None:
        while True:
            try:
                await self._watch()
            except Expired:
                logger.info("watch of %s expired at resourceVersion %s; listing again", self.plural, self.version)
            except Exception as error:
                logger.warning("watch of %s failed (%s); listing again in %.0fs", self.plural, error, RETRY)
                await asyncio.sleep(RETRY)
            try:
                await self.list()
            except Exception as error:
                logger.warning("listing %s failed (%s); retrying in %.0fs", self.plural, error, RETRY)
                await asyncio.sleep(RETRY)

    async def _watch(self) -> None:
        async for type_, body in self.kube.watch(self.plural, self.version, self.period):
            self.version = body["metadata"]["resourceVersion"]
            if type_ == "BOOKMARK":
                continue
            name = self.store.key(body)
            concerned = self.store.drop(name) if type_ == "DELETED" else self.store.put(body)
            if concerned is not None:
                self.changed(self.plural, Changes({name}, concerned))
