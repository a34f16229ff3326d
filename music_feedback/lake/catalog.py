"""The Glue catalog's view of a lake table: Hive column types from the frame, Parquet storage, and the
two partition keys of the hive layout. The first export of a table registers it, so the catalog always
describes what was written."""
from __future__ import annotations

import polars as pl

PARTITION_KEYS = [{"Name": "run_date", "Type": "string"}, {"Name": "marketplace", "Type": "string"}]
PARQUET = {"InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
           "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
           "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}}
_HIVE = {pl.Int8: "tinyint", pl.Int16: "smallint", pl.Int32: "int", pl.Int64: "bigint", pl.UInt8: "smallint",
         pl.UInt16: "int", pl.UInt32: "bigint", pl.UInt64: "bigint", pl.Float32: "float", pl.Float64: "double",
         pl.Boolean: "boolean", pl.Utf8: "string", pl.Date: "date", pl.Datetime: "timestamp"}


def hive_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.List):
        return f"array<{hive_type(dtype.inner)}>"
    return _HIVE.get(dtype.base_type(), "string")


def table_input(name: str, location: str, schema: pl.Schema) -> dict:
    keys = {k["Name"] for k in PARTITION_KEYS}
    columns = [{"Name": c, "Type": hive_type(t)} for c, t in schema.items() if c not in keys]
    return {"Name": name, "TableType": "EXTERNAL_TABLE", "PartitionKeys": PARTITION_KEYS,
            "Parameters": {"classification": "parquet"},
            "StorageDescriptor": {"Columns": columns, "Location": location, **PARQUET}}
