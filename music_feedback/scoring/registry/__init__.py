"""The model registry: versions with metrics, training window and lineage, and who was champion when."""
