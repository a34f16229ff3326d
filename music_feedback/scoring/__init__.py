"""Feature hydration, the two models, and the combined score."""
