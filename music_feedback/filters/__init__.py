"""The filter chain: named, config-enabled, columnar filters that keep what they remove, with a reason."""
from music_feedback.filters.base import CandidateFilter, FilterContext, FilterResult
from music_feedback.filters.chain import ChainResult, build_chain, run_chain

__all__ = ["CandidateFilter", "FilterContext", "FilterResult", "ChainResult", "build_chain", "run_chain"]
