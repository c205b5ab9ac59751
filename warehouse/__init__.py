"""The lake: a DuckLake of Parquet files and a SQL catalog. ``connect(path)`` opens it
read-only for analysts."""

from warehouse.lake import connect

__all__ = ["connect"]
