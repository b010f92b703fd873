"""``OMNIHOOK_PROVIDER_CONCURRENCY``: how many tasks the provider account runs at once.

A comma-separated list: a bare number is the account's slots (all models together), and
``MODEL=N`` bounds one model (a resource pack of its own, or a share kept for others), e.g.
``5`` or ``5,kling-video-o1=2`` or ``kling-v3-omni=3``. Empty: no limit of ours; a task is
queued only when the provider answers that it is full (1303/1302).
"""

from __future__ import annotations

from storage.admission import SlotLimits


def parse_slot_limits(text: str) -> SlotLimits:
    """Read the setting; ValueError says what is wrong with which part."""
    total: int | None = None
    per_model: dict[str, int] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        model, sep, count = part.rpartition("=")
        model = model.strip()
        if sep and not model:
            raise ValueError(f"{part!r}: a model name must come before '='")
        slots = _slots(count.strip(), part)
        if not sep:
            if total is not None:
                raise ValueError(f"{part!r}: the account's slots are given twice")
            total = slots
        elif model in per_model:
            raise ValueError(f"{part!r}: model {model!r} is given twice")
        else:
            per_model[model] = slots
    return SlotLimits(total=total, per_model=per_model)


def _slots(count: str, part: str) -> int:
    try:
        slots = int(count)
    except ValueError:
        raise ValueError(f"{part!r}: {count!r} is not a whole number of slots") from None
    if slots < 1:
        raise ValueError(f"{part!r}: at least 1 slot (leave the setting empty for no limit)")
    return slots
