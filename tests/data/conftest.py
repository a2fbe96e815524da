"""Fixtures for the data-layer tests; helpers live in datahelpers.py (a unique module name)."""

from __future__ import annotations

import pytest
from datahelpers import make_scan

from ptychodus_torch_plugin.data import ScanData


@pytest.fixture
def scan() -> ScanData:
    return make_scan()
