"""Delivery: the channels that ask listeners for feedback, and the ledger that makes each ask happen once."""
