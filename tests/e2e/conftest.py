"""The page tests' browser: one headless Chromium per module, started once the module's ``site`` is served."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def browser(site):  # noqa: ANN001, ANN201
    """Headless Chromium (tests/e2e/chromium.py) for the tests of a module that defines a ``site`` fixture."""
    from tests.e2e.chromium import launch_chromium  # imported here: the CLI tests need no playwright

    with launch_chromium() as b:
        yield b
