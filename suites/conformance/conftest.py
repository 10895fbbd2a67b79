"""One test per check in the catalogue, so every check is its own line in JUnit and allure."""

from __future__ import annotations

import pytest

from seatrial import checks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "check_id" in metafunc.fixturenames:
        metafunc.parametrize("check_id", [c.id for c in checks.catalogue()])
