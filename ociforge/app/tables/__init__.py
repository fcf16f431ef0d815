"""Database tables as reproducible CSV or Parquet files (``[[tables]]`` with --with-files).

``snapshot`` reads every table of one database in one snapshot (``TableExport``),
``source`` opens the database through its ADBC driver, ``columns`` fixes each
column's Arrow type, ``files`` writes the batches as CSV or Parquet, byte for
byte the same for the same rows.  Database URLs are ``app/dburl``'s.
"""

from .snapshot import TableExport, TableSnapshot, open_database, require_pyarrow, snapshot_table

__all__ = ["TableExport", "TableSnapshot", "open_database", "require_pyarrow", "snapshot_table"]
