"""Copy an embedded (DuckDB) warehouse into a PostgreSQL database: the Redshift stand-in of the tests and
of `make demo-aws` holds exactly the data of the embedded run it is compared with."""
from __future__ import annotations

import io
from pathlib import Path

import duckdb

_PG_TYPES = {"BIGINT": "BIGINT", "INTEGER": "INTEGER", "DOUBLE": "DOUBLE PRECISION", "BOOLEAN": "BOOLEAN",
             "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "VARCHAR": "VARCHAR"}


def load_warehouse(path: Path, server) -> dict[str, int]:
    """Every table of the DuckDB file, replaced in `server`'s database; returns row counts."""
    counts = {}
    src = duckdb.connect(str(path), read_only=True)
    conn = server.connect()
    try:
        tables = [r[0] for r in src.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main' ORDER BY table_name").fetchall()]
        for table in tables:
            cols = src.execute("SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()
            ddl = ", ".join(f'"{c}" {_PG_TYPES.get(t.split("(")[0], "VARCHAR")}' for c, t in cols)
            buf = io.BytesIO()
            src.sql(f"SELECT * FROM {table}").pl().write_csv(buf, null_value="\\N", datetime_format="%Y-%m-%d %H:%M:%S%.f")
            buf.seek(0)
            with conn.cursor() as cur:
                cur.execute(f'DROP TABLE IF EXISTS "{table}"; CREATE TABLE "{table}" ({ddl})')
                cur.copy_expert(f"COPY \"{table}\" FROM STDIN WITH (FORMAT csv, HEADER true, NULL '\\N')", buf)
                cur.execute(f'ANALYZE "{table}"')
                cur.execute(f'SELECT COUNT(*) FROM "{table}"')
                counts[table] = cur.fetchone()[0]
    finally:
        conn.close()
        src.close()
    return counts
