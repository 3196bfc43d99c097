"""Fixtures for the verl integration tests.

TransferQueue (a KV store of Ray actors) is replaced at its module interface ``kv_batch_get`` /
``kv_batch_put`` by an in-memory store that keeps rows exactly as verl stores them: one TensorDict per
partition built with verl's ``list_of_dict_to_tensordict`` (jagged tensors for variable lengths,
``NonTensorStack`` for per-row objects).
"""
from __future__ import annotations

import os
import warnings

import pytest
import torch

os.environ.setdefault("VERL_LOGGING_LEVEL", "WARN")
warnings.filterwarnings("ignore", message=".*engine is not available.*")
warnings.filterwarnings("ignore", message="Disabled critic.*")


class InMemoryTQ:
    """The two TransferQueue calls the trainer's advantage step makes, over real TensorDicts."""

    def __init__(self):
        self.rows: dict[tuple[str, str], dict] = {}

    def put_rows(self, partition_id: str, keys: list[str], rows: list[dict]) -> None:
        for key, row in zip(keys, rows, strict=True):
            self.rows[(partition_id, key)] = dict(row)

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        from verl.utils.tensordict_utils import list_of_dict_to_tensordict

        rows = [self.rows[(partition_id, k)] for k in keys]
        names = select_fields if select_fields is not None else list(rows[0])
        names = [names] if isinstance(names, str) else names
        # like TransferQueue, absent optional fields (values, ref_log_prob, ...) are simply not returned
        present = [n for n in names if all(n in r for r in rows)]
        return list_of_dict_to_tensordict([{n: r[n] for n in present} for r in rows])

    def kv_batch_put(self, keys, partition_id, fields=None, tags=None):
        from transfer_queue import KVBatchMeta

        if fields is not None:
            for i, key in enumerate(keys):
                row = self.rows.setdefault((partition_id, key), {})
                for name in fields.keys():
                    value = fields[name][i]
                    row[name] = value.clone() if isinstance(value, torch.Tensor) else value
        return KVBatchMeta(keys=list(keys), tags=[{} for _ in keys], partition_id=partition_id,
                           fields=sorted({n for k in keys for n in self.rows[(partition_id, k)]}))

    def field(self, partition_id: str, key: str, name: str):
        return self.rows[(partition_id, key)][name]


@pytest.fixture
def fake_tq(monkeypatch):
    import transfer_queue

    store = InMemoryTQ()
    monkeypatch.setattr(transfer_queue, "kv_batch_get", store.kv_batch_get)
    monkeypatch.setattr(transfer_queue, "kv_batch_put", store.kv_batch_put)
    return store


@pytest.fixture(scope="session")
def compose():
    from dipo_tools.verl_ext.main import compose_config

    return compose_config
