"""Deploying a promoted model to where the batch scores with it: the `ModelDeployer` port and its adapters."""
