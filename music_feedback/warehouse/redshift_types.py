"""What the Redshift adapter and its stage session share: how rows come back, and the timeout's setting."""
import polars as pl

TIMEOUT_VAR = "MUSIC_FEEDBACK_REDSHIFT_QUERY_TIMEOUT_S"
CHUNK_ROWS = 100_000  # rows a server-side cursor brings back at a time
# Postgres type OIDs (Redshift reports the same) to the dtypes the DuckDB adapter returns.
PG_DTYPES = {16: pl.Boolean, 20: pl.Int64, 21: pl.Int16, 23: pl.Int32, 700: pl.Float32, 701: pl.Float64,
             1700: pl.Float64, 1082: pl.Date, 1114: pl.Datetime("us"), 1184: pl.Datetime("us", "UTC"),
             25: pl.Utf8, 1043: pl.Utf8, 1042: pl.Utf8, 19: pl.Utf8}
