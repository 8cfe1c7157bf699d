"""ShardDataset: listing, per-epoch shuffles, worker and rank splits, prefetch, the plan."""

import logging
import threading

import pytest

import cairn.torch as ct
from cairn import Client, NotFoundError, VerificationError
from cairn.torch import ShardDataset, expand_braces


def _key_set(samples):
    return [s["__key__"] for s in samples]


def _run(ds, worker, num_workers, monkeypatch):
    """Iterates ``ds`` as DataLoader worker ``worker`` of ``num_workers`` would."""
    monkeypatch.setattr(ct, "_worker_info", lambda: (worker, num_workers))
    return list(ds)


def _ds(shards, gateway, **kw):
    kw.setdefault("register_plan", False)
    return ShardDataset(str(shards.root), "train/shard-*.tar", gateway=gateway.url, **kw)


def test_brace_expansion():
    assert expand_braces("s-{000..002}.tar") == ["s-000.tar", "s-001.tar", "s-002.tar"]
    assert expand_braces("{a,b}/{1..2}") == ["a/1", "a/2", "b/1", "b/2"]
    assert expand_braces("x-{8..10}") == ["x-8", "x-9", "x-10"]
    assert expand_braces("plain") == ["plain"]


def test_glob_and_braces_list_the_same_shards(shards, gateway):
    a = _ds(shards, gateway).shards()
    b = ShardDataset(str(shards.root), "train/shard-{000000..000007}.tar", gateway=gateway.url).shards()
    assert a == b and [s.path for s in a] == sorted(shards.samples)
    c = Client(gateway.url)
    assert all(c.resolve(f"{shards.root}/{s.path}").cid == s.cid for s in a)
    with pytest.raises(NotFoundError):
        ShardDataset(str(shards.root), "train/shard-000099.tar", gateway=gateway.url).shards()


def test_two_workers_see_every_sample_once_per_epoch(shards, gateway, monkeypatch):
    every = sorted(_key_set(shards.all_samples()))
    orders = []
    for epoch in range(3):
        ds = _ds(shards, gateway, seed=5, epoch=epoch)
        w0 = _run(ds, 0, 2, monkeypatch)
        w1 = _run(ds, 1, 2, monkeypatch)
        assert not set(_key_set(w0)) & set(_key_set(w1))
        assert sorted(_key_set(w0) + _key_set(w1)) == every
        # samples come whole and in tar order within a shard
        by_key = {s["__key__"]: s for s in shards.all_samples()}
        for s in w0 + w1:
            assert {k: v for k, v in s.items() if k != "__url__"} == by_key[s["__key__"]]
        orders.append([s.path for s in ds.epoch_order()])
    assert len({tuple(o) for o in orders}) == 3  # each epoch its own order
    again = _ds(shards, gateway, seed=5, epoch=1)
    assert [s.path for s in again.epoch_order()] == orders[1]  # same seed, same order
    assert [s.path for s in _ds(shards, gateway, seed=6, epoch=1).epoch_order()] != orders[1]


def test_ranks_times_workers_partition_the_shards(shards, gateway, monkeypatch):
    seen = []
    for rank in range(2):
        ds = _ds(shards, gateway, seed=1, rank=rank, world_size=2)
        for w in range(2):
            seen += _key_set(_run(ds, w, 2, monkeypatch))
    assert sorted(seen) == sorted(_key_set(shards.all_samples()))


def test_rank_from_the_environment(shards, gateway, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    ds = _ds(shards, gateway, seed=3)
    assert ds.position() == (1, 4, 0, 1)
    assert ds.my_shards() == ds.epoch_order()[1::4]


def test_set_epoch_changes_the_order(shards, gateway):
    ds = _ds(shards, gateway, seed=9)
    first = ds.my_shards()
    ds.set_epoch(1)
    assert ds.my_shards() != first and sorted(ds.my_shards(), key=lambda s: s.path) == sorted(first, key=lambda s: s.path)


def test_prefetch_is_bounded_and_threads_stop_on_break(shards, gateway):
    ds = _ds(shards, gateway, prefetch=2, queue_size=2, shuffle=False)
    peak = 0
    it = iter(ds)
    for i, _ in enumerate(it):
        live = [t for t in threading.enumerate() if t.name.startswith("cairn-shard-") and t.is_alive()]
        peak = max(peak, len(live))
        if i == 25:
            break
    it.close()
    assert 1 <= peak <= 2
    for t in threading.enumerate():
        if t.name.startswith("cairn-shard-"):
            t.join(timeout=5)
            assert not t.is_alive()


def test_a_bad_block_in_a_shard_stops_iteration(shards, gateway):
    c = Client(gateway.url)
    node = c.file_node(f"{shards.root}/train/shard-000000.tar")
    gateway.corrupt.add(node.children[-1][0].multihash)
    ds = _ds(shards, gateway, shuffle=False)
    with pytest.raises(VerificationError):
        list(ds)


def test_plan_is_registered_once_by_global_worker_zero(shards, gateway, monkeypatch):
    gateway.plan_enabled = True
    ds = ShardDataset(str(shards.root), "train/shard-*.tar", seed=4, epoch=2, gateway=gateway.url)
    _run(ds, 1, 2, monkeypatch)
    assert gateway.plans == []  # worker 1 never registers
    _run(ds, 0, 2, monkeypatch)
    _run(ds, 0, 2, monkeypatch)  # twice in one epoch: once
    assert len(gateway.plans) == 1
    plan = gateway.plans[0]
    assert plan["root"] == str(shards.root) and plan["seed"] == 4 and plan["epoch"] == 2
    assert plan["num_workers"] == 2 and plan["world_size"] == 1
    assert plan["job"] == "train/shard-*.tar:4" and "rate" not in plan
    assert [s["path"] for s in plan["shards"]] == [s.path for s in ds.epoch_order()]
    assert all(s["cid"] == str(x.cid) for s, x in zip(plan["shards"], ds.epoch_order()))


def test_plan_carries_the_read_rate_and_job(shards, gateway):
    gateway.plan_enabled = True
    ds = ShardDataset(str(shards.root), "train/shard-*.tar", gateway=gateway.url, read_rate=50e6, job="resnet")
    assert ds.register_plan() is True
    assert gateway.plans[-1]["rate"] == 50e6 and gateway.plans[-1]["job"] == "resnet"
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            ShardDataset(str(shards.root), "train/shard-*.tar", gateway=gateway.url, read_rate=bad)


def test_plan_registration_is_silent_without_the_endpoint(shards, gateway, caplog):
    ds = ShardDataset(str(shards.root), "train/shard-*.tar", gateway=gateway.url)
    with caplog.at_level(logging.DEBUG, logger="cairn"):
        assert ds.register_plan() is False  # the fake answers 404
        assert len(list(ds)) == 80
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_plan_failure_never_stops_training(shards, gateway, caplog):
    ds = ShardDataset(str(shards.root), "train/shard-*.tar", gateway=gateway.url, api="http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, logger="cairn"):
        assert len(list(ds)) == 80
    assert any("plan registration" in r.getMessage() for r in caplog.records)


def test_plan_url_and_token(shards, gateway, monkeypatch):
    ds = ShardDataset(str(shards.root), "train/*.tar", gateway=gateway.url)
    assert ds.plan_url() == gateway.url + "/api/v0/plan"
    monkeypatch.setenv("CAIRN_API", "http://127.0.0.1:5001/")
    assert ds.plan_url() == "http://127.0.0.1:5001/api/v0/plan"


def test_dataset_pickles_for_worker_processes(shards, gateway):
    import pickle
    ds = _ds(shards, gateway, seed=2, client=Client(gateway.url, fetch="raw"))
    ds.shards()
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.epoch_order() == ds.epoch_order()
    assert len(list(copy)) == 80


def test_with_torch_dataloader(shards, gateway):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, IterableDataset
    ds = _ds(shards, gateway, seed=0)
    assert isinstance(ds, IterableDataset)
    keys = [s["__key__"] for s in DataLoader(ds, batch_size=None, num_workers=2)]
    assert sorted(keys) == sorted(_key_set(shards.all_samples()))
    del torch
