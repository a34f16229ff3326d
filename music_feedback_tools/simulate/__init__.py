"""Simulated listeners and whole simulated days, through the same assets and endpoints as production."""
