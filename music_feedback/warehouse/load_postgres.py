"""Copy an embedded (DuckDB) warehouse into a PostgreSQL database: the Redshift stand-in of the tests and
of `make demo-aws` holds exactly the data of the embedded run it is compared with."""
from __future__ import annotations

import io
from pathlib import Path

import duckdb

_PG_TYPES = {"BIGINT": "BIGINT", "INTEGER": "INTEGER", "SMALLINT": "SMALLINT", "DOUBLE": "DOUBLE PRECISION",
             "FLOAT": "REAL", "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP",
             "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ", "VARCHAR": "VARCHAR"}


def pg_type(table: str, column: str, duck_type: str) -> str:
    """Postgres's type for a DuckDB column; an unknown one stops the copy (as text it would compare unequal)."""
    if duck_type.startswith("DECIMAL"):
        return duck_type.replace("DECIMAL", "NUMERIC")
    if duck_type not in _PG_TYPES:
        raise ValueError(f"{table}.{column} has DuckDB type {duck_type}, which the Postgres copy does not map: "
                         f"cast it to one of {', '.join(sorted(_PG_TYPES))} in the warehouse")
    return _PG_TYPES[duck_type]


def load_warehouse(path: Path, server) -> dict[str, int]:
    """Every table of the DuckDB file, replaced in `server`'s database in one transaction (a failed copy
    leaves the database as it was); returns row counts."""
    counts = {}
    src = duckdb.connect(str(path), read_only=True)
    conn = server.connect()
    conn.autocommit = False
    try:
        tables = [r[0] for r in src.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main' ORDER BY table_name").fetchall()]
        for table in tables:
            cols = src.execute("SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()
            ddl = ", ".join(f'"{c}" {pg_type(table, c, t)}' for c, t in cols)
            buf = io.BytesIO()
            src.sql(f'SELECT * FROM "{table}"').pl().write_csv(buf, null_value="\\N",
                                                               datetime_format="%Y-%m-%d %H:%M:%S%.f")
            buf.seek(0)
            with conn.cursor() as cur:
                cur.execute(f'DROP TABLE IF EXISTS "{table}"; CREATE TABLE "{table}" ({ddl})')
                cur.copy_expert(f"COPY \"{table}\" FROM STDIN WITH (FORMAT csv, HEADER true, NULL '\\N')", buf)
                cur.execute(f'ANALYZE "{table}"')
                cur.execute(f'SELECT COUNT(*) FROM "{table}"')
                counts[table] = cur.fetchone()[0]
        conn.commit()
    finally:
        conn.close()
        src.close()
    return counts
