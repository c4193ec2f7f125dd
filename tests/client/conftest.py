"""Fixtures for the client toolkit tests; the fakes live in ``client_fakes``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from client_fakes import FakeProvider, Harness

from consentry.client import Provider, TokenStore


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Run the test once with ``Client`` and once with ``AsyncClient``."""
    return str(request.param)


@pytest.fixture
def consentry_fake() -> FakeProvider:
    return FakeProvider(Provider.consentry("https://auth.example.test", "https://api.example.test"))


@pytest.fixture
def getresponse_fake() -> FakeProvider:
    return FakeProvider(Provider.getresponse(), style="getresponse", rotate=False)


@pytest.fixture
def harness(kind: str) -> Callable[..., Harness]:
    """Build a harness of the current kind around a fake provider."""

    def make(fake: FakeProvider, store: TokenStore | None = None, **options: Any) -> Harness:
        return Harness(kind, fake, store, **options)

    return make
