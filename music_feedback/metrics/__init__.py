"""The day's metrics (processing, delivery, business, technical), their sink and the daily report."""
