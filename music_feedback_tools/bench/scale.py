"""The scale section of `make bench SCALE=N` (N other than 1): the batch on N times the default day, to
see whether its time grows no faster than the day and its memory hardly at all (issue 27: at 20x, wall
growth <= 20 and RSS growth <= 1.5), and whether the filter chain keeps the same shares of pairs at scale.

Its keys are the batch section's prefixed with `scale<N>_`, plus the growth over 1x. The 1x figures are
the batch section's from the same bench run, or measured here first when it was not selected.
"""
from __future__ import annotations

from music_feedback.programs.model import Program
from music_feedback_tools.bench import batch

# The batch section's figures repeated at scale (step_s and the runs: where the time goes, how steady).
KEPT = ("batch_wall_s", "process_wall_s", "peak_rss_mb", "gx_worker_peak_rss_mb", "raw_records",
        "unique_candidates", "eligible_candidates", "funnel_kept_share", "removed_share_by_filter", "limit_ratio",
        "checks_passed", "checks", "step_s", "batch_wall_runs_s", "peak_rss_runs_mb", "warehouse_s",
        "machine_calibration_s")


def run(program: Program, args) -> tuple[dict, bool]:
    scale = args.scale
    if scale == 1:
        return {}, True
    figures, base = {}, getattr(args, "figures", {})
    if "batch_wall_s" not in base:
        figures, ok = batch.run(program, args)
        if not ok:
            return figures, False
        base = figures
    tag = f"scale{scale:g}"
    print(f"--- the day at {scale:g}x ---", flush=True)
    more, ok = batch.measure(program, scale)
    if not ok:
        return {**figures, f"{tag}_batch_failed": more.get("batch_failed", True)}, False
    figures.update({f"{tag}_{name}": more.get(name) for name in KEPT})
    figures[f"{tag}_wall_growth"] = round(more["batch_wall_s"] / base["batch_wall_s"], 2)
    figures[f"{tag}_rss_growth"] = round(more["peak_rss_mb"] / base["peak_rss_mb"], 2)
    _print(tag, scale, figures, base, more)
    return figures, True


def _print(tag: str, scale: float, figures: dict, base: dict, more: dict) -> None:
    """The growth, and the funnel at scale beside 1x's."""
    for name in ("wall_growth", "rss_growth"):
        print(f"{tag + '_' + name:>28}: {figures[tag + '_' + name]}")
    print(f"{'kept by the filter chain':>28}: {more.get('funnel_kept_share') or 0:.2%} at {scale:g}x, "
          f"{base.get('funnel_kept_share') or 0:.2%} at 1x")
    at_1x = base.get("removed_share_by_filter") or {}
    for name, share in (more.get("removed_share_by_filter") or {}).items():
        print(f"{'removed by ' + name:>28}: {share:.2%} at {scale:g}x, {at_1x.get(name, 0):.2%} at 1x")
