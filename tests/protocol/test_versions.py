from __future__ import annotations

import pytest

from mcp_multi.protocol import versions as v


@pytest.mark.parametrize("asked", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
def test_supported_version_is_answered(asked: str) -> None:
    assert v.negotiate(asked) == asked


@pytest.mark.parametrize("asked", ["2023-01-01", "2099-12-31", "", None, 5])
def test_other_versions_get_our_latest(asked: object) -> None:
    assert v.negotiate(asked) == v.LATEST_HANDSHAKE_VERSION


def test_features_by_revision() -> None:
    assert v.supports("2025-03-26", "batch")
    assert not v.supports("2024-11-05", "batch") and not v.supports("2025-06-18", "batch")
    assert v.supports("2025-11-25", "input_validation_as_tool_error")
    assert not v.supports("2025-06-18", "input_validation_as_tool_error")
