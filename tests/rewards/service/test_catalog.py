"""Catalog use cases: creating a reward is idempotent by request id and a taken id is refused."""

from __future__ import annotations

import dataclasses

import pytest

from rewards_svc.server import RewardsServices
from service_kit.errors import AlreadyExists


def test_create_reward_is_idempotent(service: RewardsServices) -> None:
    created = dataclasses.replace(service.catalog.get_reward("museum-free-reservation"), reward_id="new-one", stock=10)
    assert service.catalog.create_reward("c1", created) == service.catalog.create_reward("c1", created)
    with pytest.raises(AlreadyExists) as reused:
        service.catalog.create_reward("c1", dataclasses.replace(created, stock=11))
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(AlreadyExists) as taken:
        service.catalog.create_reward("c2", created)
    assert taken.value.reason == "REWARD_EXISTS"
