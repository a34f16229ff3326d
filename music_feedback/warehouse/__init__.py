"""The warehouse port, its DuckDB adapter and the embedded data generator."""
