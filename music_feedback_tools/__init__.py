"""The bench, the simulated listeners and days, the local AWS stand-ins and the AWS demo day: tools on top of the product, which never imports them except lazily in its CLI commands."""
