"""How many threads a batch is scored on: shared by the scorers (scorer.py) and the model server's body
handler (wire.py), so it imports neither."""
from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_thread():
    """Score a batch on one thread: for a few thousand rows, waking OpenMP's pool costs more than the
    work (measured: 10 batches of 2,000 rows took 9 s on two threads of a busy machine, 0.15 s on one)."""
    return threadpool_limits(limits=1)
