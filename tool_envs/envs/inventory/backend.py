"""Backend of the ``inventory`` environment: a plain Python class, one instance per episode.

Public attributes (here ``stock``) are the state that ``Episode.state()`` snapshots and that tasks'
``ground_truth.final_state`` is compared with; names starting with ``_`` are private.
"""
from __future__ import annotations

ITEMS = ("apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "pear")


class Inventory:
    def __init__(self) -> None:
        self.stock: dict[str, int] = {}

    def load_state(self, state: dict) -> None:
        """Init hook (``backend.init_method``): receives a deep copy of the task's initial state."""
        stock = state.get("stock", {})
        unknown = sorted(set(stock) - set(ITEMS))
        if unknown:
            raise ValueError(f"unknown items in initial stock: {unknown}")
        self.stock = {item: int(stock.get(item, 0)) for item in ITEMS}

    def add_stock(self, item: str, quantity: int) -> dict:
        self.stock[item] = self.stock.get(item, 0) + quantity
        return {"item": item, "added": quantity, "quantity": self.stock[item]}

    def remove_stock(self, item: str, quantity: int) -> dict:
        have = self.stock.get(item, 0)
        if quantity > have:
            # An exception becomes an error result the model sees; the state is unchanged.
            raise ValueError(f"only {have} {item} in stock, cannot remove {quantity}")
        self.stock[item] = have - quantity
        return {"item": item, "removed": quantity, "quantity": self.stock[item]}

    def check_stock(self, item: str) -> dict:
        return {"item": item, "quantity": self.stock.get(item, 0)}

    def list_items(self) -> dict:
        return {"stock": {k: v for k, v in self.stock.items() if v > 0}}
