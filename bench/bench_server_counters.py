"""PostgreSQL's own counters around a measured round: the WAL it wrote, its full-page images, the dirty buffers
backends had to write out themselves to make room, and the blocks each relation of one schema read from outside
shared buffers. They showed where a preloaded credit's time goes (ADR 0135): one leaf of each account-keyed index
read per credit, not the full-page images first suspected.

The WAL and buffer counters are the server's (pg_stat_wal, pg_stat_bgwriter): anything else the server does in the
round is counted too, so they mean most on a quiet server. The block reads are the schema's own (pg_statio_*). A
backend reports its counts when it goes idle or exits; each round's ledger processes exit before the counters are
read again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

_SERVER = text("SELECT w.wal_bytes, w.wal_fpi, b.buffers_backend FROM pg_stat_wal w CROSS JOIN pg_stat_bgwriter b")
_BLOCKS_READ = text(
    """
    SELECT relname, heap_blks_read FROM pg_statio_all_tables WHERE schemaname = :schema
    UNION ALL SELECT indexrelname, idx_blks_read FROM pg_statio_all_indexes WHERE schemaname = :schema
    """
)


@dataclass(frozen=True)
class Counters:
    wal_bytes: int
    full_page_images: int
    backend_writes: int
    blocks_read: dict[str, int]


def schema_of(url: str) -> str:
    """The schema a bench URL's search_path names (`options=-csearch_path=<schema>`)."""
    options = str(make_url(url).query.get("options", ""))
    return options.removeprefix("-csearch_path=").split()[0]


def read(url: str) -> Counters:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            wal_bytes, fpi, backend_writes = conn.execute(_SERVER).one()
            reads = conn.execute(_BLOCKS_READ, {"schema": schema_of(url)}).all()
    finally:
        engine.dispose()
    return Counters(int(wal_bytes), int(fpi), int(backend_writes), {name: int(count or 0) for name, count in reads})


def per_round(before: Counters, after: Counters, credits: int, least_reads: float = 0.05) -> dict[str, object]:
    """What one round of `credits` cost: WAL MB, full-page images, backend writes per credit, and the block reads per
    credit of each relation that read at least `least_reads` per credit."""
    reads = {
        name: round((after.blocks_read[name] - before.blocks_read.get(name, 0)) / credits, 3)
        for name in after.blocks_read
    }
    return {
        "wal_mb": round((after.wal_bytes - before.wal_bytes) / 1e6),
        "full_page_images": after.full_page_images - before.full_page_images,
        "backend_writes_per_credit": round((after.backend_writes - before.backend_writes) / credits, 3),
        "blocks_read_per_credit": {name: value for name, value in sorted(reads.items()) if value >= least_reads},
    }
