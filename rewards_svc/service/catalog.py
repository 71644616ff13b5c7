"""Catalog use cases: seed, read and list rewards; ops create, change and retire them (each retry answers as the
first request did)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Connection, Engine

from rewards_svc import store
from rewards_svc.domain.catalog import (
    Reward,
    apply_update,
    available_in,
    retire,
    reward_not_found,
    validate_category,
    validate_reward,
)
from rewards_svc.domain.requests import fingerprint, require_region_code, require_request_id
from rewards_svc.domain.seed_catalog import SeedCatalog
from rewards_svc.service.idempotency import once
from service_kit.clock import Clock
from service_kit.errors import AlreadyExists, InvalidArgument, NotFound
from service_kit.paging import page_size


class Catalog:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def seed(self, catalog: SeedCatalog) -> int:
        """Adds the catalog's rewards and projects that are not in the database yet; never overwrites."""
        with self._engine.begin() as connection:
            added = store.rewards.add_missing(connection, catalog.rewards, self._clock())
            return added + store.charity.add_missing_projects(connection, catalog.projects)

    def get_reward(self, reward_id: str) -> Reward:
        with self._engine.connect() as connection:
            reward = store.rewards.get(connection, reward_id)
        if reward is None:
            raise reward_not_found(reward_id)
        return reward

    def list_rewards(
        self, region_code: str, category: str, include_retired: bool, size: int, after_id: str
    ) -> tuple[list[Reward], str]:
        """A page of rewards by id, those of other regions left out; the token is the last id of the page."""
        if region_code:
            require_region_code(region_code)
        validate_category(category)
        limit = page_size(size)
        found: list[Reward] = []
        cursor = after_id
        with self._engine.connect() as connection:
            while len(found) < limit:
                batch = store.rewards.list_page(
                    connection, category=category, include_retired=include_retired, after_id=cursor, limit=limit
                )
                if not batch:
                    return found, ""
                cursor = batch[-1].reward_id
                found += [reward for reward in batch if not region_code or available_in(reward, region_code)]
        found = found[:limit]
        return found, found[-1].reward_id

    def create_reward(self, request_id: str, reward: Reward) -> Reward:
        require_request_id(request_id)
        validate_reward(reward)
        if reward.retired:
            raise InvalidArgument("reward.retired", "a new reward cannot be retired")

        def create(connection: Connection, now: datetime) -> Reward:
            if not store.rewards.insert(connection, reward, now):
                raise AlreadyExists("REWARD_EXISTS", f"reward {reward.reward_id} exists")
            return reward

        return self._once("create_reward", request_id, fingerprint(asdict(reward)), reward.reward_id, create)

    def update_reward(self, request_id: str, changes: Reward, mask: list[str]) -> Reward:
        """Changes the masked fields; a new price applies to new redemptions only (each keeps its own price)."""
        require_request_id(request_id)
        digest = fingerprint(changes.reward_id, sorted(mask), {name: getattr(changes, name) for name in mask})

        def update(connection: Connection, now: datetime) -> Reward:
            current = store.rewards.get(connection, changes.reward_id, lock=True)
            if current is None:
                raise NotFound("REWARD_NOT_FOUND", f"no reward {changes.reward_id}")
            updated = apply_update(current, changes, mask)
            store.rewards.save(connection, updated, now)
            return updated

        return self._once("update_reward", request_id, digest, changes.reward_id, update)

    def retire_reward(self, request_id: str, reward_id: str) -> Reward:
        require_request_id(request_id)

        def retire_once(connection: Connection, now: datetime) -> Reward:
            current = store.rewards.get(connection, reward_id, lock=True)
            if current is None:
                raise NotFound("REWARD_NOT_FOUND", f"no reward {reward_id}")
            retired = retire(current)
            if not current.retired:
                store.rewards.save(connection, retired, now)
            return retired

        return self._once("retire_reward", request_id, fingerprint(reward_id), reward_id, retire_once)

    def _once(
        self,
        operation: str,
        request_id: str,
        digest: str,
        reward_id: str,
        change: Callable[[Connection, datetime], Reward],
    ) -> Reward:
        return once(
            self._engine,
            operation,
            now=self._clock(),
            request_id=request_id,
            digest=digest,
            result_ref=reward_id,
            kind=Reward,
            current=lambda connection: store.rewards.get(connection, reward_id),
            change=change,
        )
