"""One transaction on a cursor: committed when the block ends, rolled back on any error.

DuckDB's optimistic concurrency reports two writers touching the same row as a
``TransactionException`` at write or commit time; ``transaction`` turns that into
``endolite.errors.Conflict`` so the later writer is told, never silently overwritten.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from endolite.errors import Conflict, StorageError


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, *, what: str = "the change") -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except duckdb.TransactionException as exc:
        _rollback(con)
        raise Conflict(f"{what}: someone else changed the same record at the same moment; "
                       "nothing was saved, reload and try again") from exc
    except duckdb.IOException as exc:      # the database file could not be written
        _rollback(con)
        raise StorageError(f"{what}: the database could not be written ({exc}); disk full or "
                           "read-only data directory? nothing was saved") from exc
    except BaseException:
        _rollback(con)
        raise


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:       # already rolled back by DuckDB after a failed commit
        pass
