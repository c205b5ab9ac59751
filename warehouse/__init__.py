"""The warehouse: Parquet files are the truth; the DuckDB catalog holds only views over them."""
