"""Pure polars transforms of the extract stage."""
