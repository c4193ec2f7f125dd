"""What every request handler shares: settings, database, keys, limits, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from consentry.api.ratelimit import RateLimiter
from consentry.config import Settings
from consentry.crypto import Keyring
from consentry.metrics import Metrics
from consentry.store.db import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keys: Keyring
    limiter: RateLimiter
    metrics: Metrics
