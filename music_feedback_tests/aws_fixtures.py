"""moto's server for the model registry and score cache tests: the same server the store's suite uses."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def moto_url(moto_endpoint):
    return moto_endpoint
