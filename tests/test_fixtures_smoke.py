"""The real-service fixtures hand out isolated, working PostgreSQL schemas and a reachable Redis."""

import pytest
import redis
from sqlalchemy import create_engine, text


@pytest.mark.postgres
def test_postgres_url_points_at_an_empty_schema_of_its_own(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE probe (id int)"))
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
        tables = connection.execute(
            text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
        ).scalar_one()
    engine.dispose()
    assert schema.startswith("t_")
    assert tables == 1


@pytest.mark.redis
def test_redis_url_answers(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(redis_prefix + "probe", "1", ex=10)
    assert client.get(redis_prefix + "probe") == b"1"
