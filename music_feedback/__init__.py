"""Feedback-solicitation programs as Dagster assets."""
import os

# Polars allocates through jemalloc, which by default keeps freed pages for 10 s, so each stage of the
# batch started on top of the previous stage's freed frames. A background thread returns them after
# 0.3 s (immediately cost ~3 s of page faults at 1x). Set before polars first allocates; an explicit
# setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:300,muzzy_decay_ms:0")
