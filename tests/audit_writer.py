"""The body of a writer process for the concurrency tests of the audit trail. Kept apart from
the test module so that each spawned process imports only what it needs."""
from __future__ import annotations


def append_events(url: str, n: int, p: int, barrier) -> None:
    """Its own engine, one transaction per event, as a separate web worker would."""
    from sqlalchemy.orm import sessionmaker

    from portal.audit.trail import Actor, record
    from portal.db import make_engine

    engine = make_engine(url)
    Session = sessionmaker(engine)
    barrier.wait(timeout=60)
    for i in range(n):
        with Session() as s, s.begin():
            record(s, "test.process", actor=Actor(p, f"p{p}@example.jp", "filer", None), target_id=i)
    engine.dispose()
