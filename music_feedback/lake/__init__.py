"""The lake: Parquet (zstd) in a hive layout `table/run_date=…/marketplace=…/`, in a local folder or on S3."""
