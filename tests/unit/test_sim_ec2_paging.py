"""Pagination tokens name the last key returned."""

from __future__ import annotations

import pytest

from vpcnet_sim.ec2.describe import decode_token, paginate
from vpcnet_sim.ec2.errors import SimApiError


def test_pages_cover_everything_once() -> None:
    items = [f"eni-{i:03d}" for i in range(12)]
    seen: list[str] = []
    token = None
    while True:
        page, token = paginate(items, lambda x: x, 5, token)
        seen += page
        if token is None:
            break
    assert seen == items


def test_no_max_results_returns_all() -> None:
    assert paginate(["a", "b"], lambda x: x, None, None) == (["a", "b"], None)


def test_bad_token() -> None:
    with pytest.raises(SimApiError) as exc:
        decode_token("!!!")
    assert exc.value.code == "InvalidPaginationToken"
