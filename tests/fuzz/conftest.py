"""Fuzzing profiles. CI runs the short one; a longer run is

    HYPOTHESIS_PROFILE=long ./test tests/fuzz

The profiles are applied by the fuzz tests themselves (not loaded globally), so the rest of
the suite keeps hypothesis's defaults.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import Server

_COMMON = {
    "deadline": None,
    "derandomize": False,
    "database": None,  # every run explores afresh; a failure prints its steps to replay
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much,
                              HealthCheck.data_too_large],
}
# stateful: max_examples runs of up to stateful_step_count steps each.
settings.register_profile("fuzz-ci", max_examples=25, stateful_step_count=15, **_COMMON)
settings.register_profile("fuzz-long", max_examples=300, stateful_step_count=40, **_COMMON)

PROFILE = "fuzz-" + os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("fuzz-ci", "fuzz-long"):
    PROFILE = "fuzz-ci"
# schemathesis: examples per API operation.
EXAMPLES_PER_OPERATION = 25 if PROFILE == "fuzz-ci" else 1000


def fuzz_settings() -> settings:
    return settings.get_profile(PROFILE)


@pytest.fixture(scope="session")
def fuzz_server(make_server: Callable[..., Server]) -> Server:
    """Grace window 0 so that every reuse of a rotated refresh token is a reuse (a model the
    state machine can predict exactly), and limits high enough not to interfere."""
    from tests.attacks.support import signup

    s = make_server(refresh_grace="0", rate_limit_per_second="10000",
                    rate_limit_per_frame="1000000", rate_limit_concurrent="100")
    s._dev = signup(s, "Dev Eloper")[0]
    return s
