"""Which task a callback token belongs to, remembered for the next notification of the task.

A task hears from the provider several times (submitted, processing, the final state, and
repeats), often in bursts; looking its token up in the database each time is the receiver's
only read. What the receiver needs of a task is its identity: its id, its external id, the
provider's id and its token's hash. Once the provider has acknowledged a task (its
``provider_task_id`` is known) none of these changes again: tokens are only replaced, and tasks
only deleted, while a submission is still unanswered. So only acknowledged tasks are
remembered, and an entry never goes stale; the cache is bounded (least recently used out).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from storage.records import TaskRecord

DEFAULT_SIZE = 4096


class TaskIds(Protocol):
    """What the receiver's checks read of a task (a :class:`TaskRecord` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def external_task_id(self) -> str: ...

    @property
    def provider_task_id(self) -> str | None: ...


@dataclass(frozen=True)
class TaskIdentity:
    id: str
    external_task_id: str
    provider_task_id: str
    callback_token_hash: str


class TokenCache:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, TaskIdentity] = OrderedDict()

    def __repr__(self) -> str:
        return f"TokenCache({len(self._entries)}/{self._size})"  # never the hashes

    def get(self, token_hash: str) -> TaskIdentity | None:
        found = self._entries.get(token_hash)
        if found is not None:
            self._entries.move_to_end(token_hash)
        return found

    def remember(self, token_hash: str, task: TaskRecord) -> None:
        """Keep ``task`` if the provider acknowledged it (see the module docstring)."""
        if not task.provider_task_id:
            return
        self._entries[token_hash] = TaskIdentity(
            task.id, task.external_task_id, task.provider_task_id, task.callback_token_hash
        )
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
