"""The delete guard's holds: a listing pass that would delete too much of a prefix is held
until an operator confirms it (listing sensors write holds, `rag-ingest` confirms them)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from rag_ingest.core.registry.model import DeleteHold
from rag_ingest.core.registry.schema import delete_holds


class HoldsMixin:
    engine: sa.Engine

    if TYPE_CHECKING:

        def _next_seq(self, conn: sa.Connection) -> int: ...

    def delete_hold(self, bucket: str, prefix: str) -> DeleteHold | None:
        """The prefix's held deletions, if a listing pass is held (see ``delete_holds``)."""
        stmt = sa.select(delete_holds).where(
            delete_holds.c.bucket == bucket, delete_holds.c.prefix == prefix
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return DeleteHold(**row._mapping) if row else None

    def delete_holds(self, bucket: str | None = None) -> list[DeleteHold]:
        """Every held prefix (of ``bucket``), by prefix."""
        stmt = sa.select(delete_holds).order_by(delete_holds.c.bucket, delete_holds.c.prefix)
        if bucket is not None:
            stmt = stmt.where(delete_holds.c.bucket == bucket)
        with self.engine.connect() as conn:
            return [DeleteHold(**row._mapping) for row in conn.execute(stmt)]

    def hold_deletes(self, bucket: str, prefix: str, would_delete: int, registered: int) -> None:
        """Record (or update) a held listing pass of ``prefix``; a confirmation stays."""
        now = time.time()
        key = (delete_holds.c.bucket == bucket, delete_holds.c.prefix == prefix)
        values = {"updated_at": now, "would_delete": would_delete, "registered": registered}
        with self.engine.begin() as conn:
            self._next_seq(conn)  # serializes with other registry writers
            if not conn.execute(delete_holds.update().where(*key).values(values)).rowcount:
                conn.execute(
                    delete_holds.insert().values(
                        bucket=bucket, prefix=prefix, held_at=now, **values
                    )
                )

    def confirm_deletes(self, bucket: str, prefix: str) -> DeleteHold | None:
        """An operator confirms a held prefix's deletions: the next listing pass applies them.
        Returns the hold confirmed (None: nothing was held)."""
        key = (delete_holds.c.bucket == bucket, delete_holds.c.prefix == prefix)
        with self.engine.begin() as conn:
            conn.execute(delete_holds.update().where(*key).values(confirmed_at=time.time()))
        return self.delete_hold(bucket, prefix)

    def clear_delete_hold(self, bucket: str, prefix: str, confirmed_before: float | None) -> None:
        """The hold is over: a pass started after its confirmation (``confirmed_before``: that
        pass's start) applied the deletions, or a pass came back under the threshold (None:
        only an unconfirmed hold is cleared)."""
        key = [delete_holds.c.bucket == bucket, delete_holds.c.prefix == prefix]
        if confirmed_before is None:
            key.append(delete_holds.c.confirmed_at.is_(None))
        else:
            key.append(delete_holds.c.confirmed_at <= confirmed_before)
        with self.engine.begin() as conn:
            conn.execute(delete_holds.delete().where(*key))
