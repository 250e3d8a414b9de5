"""Storage: the DuckDB connection, migrations and one repository module per entity."""

from endolite.storage.db import connect, migrate

__all__ = ["connect", "migrate"]
