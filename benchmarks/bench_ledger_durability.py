"""Overspend and crash durability of the budget ledger, on sqlite and mongodb (opt-in, not a test).

Usage::

    python benchmarks/bench_ledger_durability.py                   # both stores, short run
    python benchmarks/bench_ledger_durability.py --rounds 300 --kills 100 --stores sqlite

Two measurements per store:

* **overspend**: each round grants 1.0 and lets ``--spenders`` concurrent charges of 0.1 race
  from ``--processes`` processes; exactly 10 may succeed, and spent must equal the archive.
* **kill -9**: each round runs ``--spenders``-way load (charge then complete, every request with an
  ``Idempotency-Key``, each request sent twice at random moments so that the two tries race,
  also across the first one's completion) in a child process and SIGKILLs it at a random moment;
  the store is then reopened (its recovery finds the killed owner dead at once, with the default
  grace of 600 s) and every key is retried the way the server does (replay when a record exists,
  else charge once). Counted: keys with two archived records, keys without a final answer, spent
  budget the archive does not explain, and spent budget beyond one charge per charged key.

MongoDB is ``$MONGODB_URI`` when set, else a throw-away nx-27017 server.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

from lomas_core.budget import Budget
from lomas_core.errors import BudgetExceeded, IdempotencyConflict, LomasError
from lomas_core.models import ArchiveRecord, DatasetDescription, User
from lomas_core.store import BudgetStore
from lomas_core.testing.store_contract import build_store

__all__ = ["main"]

Spec = tuple[Any, ...]


def _grant(store: BudgetStore, user: str, epsilon: str) -> None:
    store.add_user(User(name=user))
    store.put_dataset(DatasetDescription(name=user, options={"path": "/dev/null"}))
    store.grant(user, user, Budget.of(epsilon, 0))


def _record(user: str, epsilon: str, key: str | None = None) -> ArchiveRecord:
    return ArchiveRecord(user=user, dataset=user, engine="bench", request={"key": key},
                         cost=Budget.of(epsilon, 0), idempotency_key=key)


def _archived(store: BudgetStore, user: str) -> Decimal:
    return sum((r.cost.epsilon for r in store.list_archive(user=user) if r.status != "released"),
               Decimal(0))


# -- overspend ---------------------------------------------------------------------------------------
def _race(spec: Spec, user: str, threads: int, barrier: Any, queue: Any) -> None:
    store = build_store(spec)
    wins = 0
    lock = threading.Lock()

    def spend() -> None:
        nonlocal wins
        record = _record(user, "0.1")
        try:
            store.charge(record)
        except BudgetExceeded:
            return
        store.complete(record.id, "success", result=1)
        with lock:
            wins += 1

    workers = [threading.Thread(target=spend) for _ in range(threads)]
    barrier.wait()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    store.close()
    queue.put(wins)


def overspend(spec: Spec, rounds: int, spenders: int, processes: int) -> dict[str, int]:
    ctx = multiprocessing.get_context("spawn")
    store = build_store(spec)
    bad_rounds = answers = unexplained = 0
    for _ in range(rounds):
        user = f"race_{uuid.uuid4().hex[:8]}"
        _grant(store, user, "1.0")
        barrier, queue = ctx.Barrier(processes), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(spec, user, spenders // processes, barrier, queue))
                 for _ in range(processes)]
        for p in procs:
            p.start()
        wins = sum(queue.get(timeout=120) for _ in procs)
        for p in procs:
            p.join()
        grant = store.get_grant(user, user)
        assert grant is not None
        answers += wins
        bad_rounds += wins != 10
        unexplained += grant.spent.epsilon != _archived(store, user)
    store.close()
    return {"rounds": rounds, "answers": answers, "rounds_not_exactly_10": bad_rounds,
            "rounds_spent_unexplained": unexplained}


# -- kill -9 -----------------------------------------------------------------------------------------
def _load(spec: Spec, user: str, keys: list[str], threads: int, started: Any) -> None:
    store = build_store(spec)
    started.set()
    # Every request is sent twice (a client retry racing its first try, also across the first
    # try's completion): the key may be charged once only.
    todo = keys + keys
    random.Random(len(keys)).shuffle(todo)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not todo:
                    return
                key = todo.pop()
            record = _record(user, "0.01", key)
            try:
                store.charge(record)
                store.complete(record.id, "success", result=1)
            except (IdempotencyConflict, LomasError):
                pass

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    os._exit(0)


def _retry(store: BudgetStore, user: str, key: str) -> str:
    """What the server does with a retried request: replay a final record, else run it once."""
    found = store.find_by_idempotency_key(user, key)
    if found is None:
        record = _record(user, "0.01", key)
        store.charge(record)
        store.complete(record.id, "success", result=1)
        found = store.find_by_idempotency_key(user, key)
    return "missing" if found is None else found.status


def kills(spec: Spec, rounds: int, spenders: int, keys_per_round: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    rng = random.Random(7)
    double = unanswered = 0
    unexplained = Decimal(0)
    beyond_once = Decimal(0)
    killed_mid_load = 0
    for _ in range(rounds):
        user = f"kill_{uuid.uuid4().hex[:8]}"
        setup = build_store(spec)
        _grant(setup, user, "1000")
        setup.close()
        keys = [f"{user}-{i}" for i in range(keys_per_round)]
        started = ctx.Event()
        proc = ctx.Process(target=_load, args=(spec, user, keys, spenders, started))
        proc.start()
        started.wait(60)
        time.sleep(rng.uniform(0.02, 0.4))  # somewhere in the middle of the load
        if proc.is_alive():
            killed_mid_load += 1
            os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        proc.join()
        store = build_store(spec)  # the restart: the killed owner is known dead, no grace wait
        statuses = [_retry(store, user, key) for key in keys]
        unanswered += sum(s not in ("success", "failed", "released") for s in statuses)
        records = store.list_archive(user=user)
        per_key: dict[str | None, int] = {}
        for r in records:
            per_key[r.idempotency_key] = per_key.get(r.idempotency_key, 0) + 1
        double += sum(n - 1 for n in per_key.values() if n > 1)
        grant = store.get_grant(user, user)
        assert grant is not None
        unexplained += abs(grant.spent.epsilon - _archived(store, user))
        charged_keys = {r.idempotency_key for r in records if r.status in ("success", "failed")}
        beyond_once += grant.spent.epsilon - Decimal("0.01") * len(charged_keys)
        store.close()
    return {"rounds": rounds, "killed_mid_load": killed_mid_load, "double_charges": double,
            "keys_without_final_answer": unanswered, "spent_unexplained_by_archive": str(unexplained),
            "spent_beyond_one_charge_per_key": str(beyond_once)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "mongodb"])
    parser.add_argument("--rounds", type=int, default=20, help="overspend rounds")
    parser.add_argument("--kills", type=int, default=5, help="kill -9 rounds")
    parser.add_argument("--spenders", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--keys", type=int, default=300, help="requests per kill round")
    args = parser.parse_args(argv)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        for name in args.stores:
            if name == "sqlite":
                spec: Spec = ("sqlite", {"path": str(Path(tmp) / "bench.db")})
            else:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # not installed
                from lomas_testsupport.mongo import running_mongodb

                uri = stack.enter_context(running_mongodb())
                spec = ("mongodb", {"uri": uri, "database": f"bench_{uuid.uuid4().hex[:8]}"})
            build_store(spec, create=True).close()
            start = time.perf_counter()
            race = overspend(spec, args.rounds, args.spenders, args.processes)
            crash = kills(spec, args.kills, args.spenders, args.keys)
            print(f"{name}: overspend {race}")
            print(f"{name}: kill -9   {crash}  ({time.perf_counter() - start:.0f} s)")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
