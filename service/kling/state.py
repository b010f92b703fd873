"""The provider's view of one task, normalised from any of its shapes.

Callbacks (bare or wrapped, old or new generation) and query answers all become a
:class:`ProviderTaskState`; the rest of omnihook never looks at provider JSON again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ProviderStatus(StrEnum):
    """The four states a provider task moves through, in our words."""

    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# kling-api.md §6: every word a provider or gateway uses for a state, lower-cased.
_STATUS_WORDS: dict[str, ProviderStatus] = {
    "submitted": ProviderStatus.SUBMITTED,
    "queued": ProviderStatus.SUBMITTED,
    "pending": ProviderStatus.SUBMITTED,
    "not_start": ProviderStatus.SUBMITTED,  # new-api: accepted, not sent upstream yet
    "processing": ProviderStatus.PROCESSING,
    "in_progress": ProviderStatus.PROCESSING,
    "succeed": ProviderStatus.SUCCEEDED,
    "succeeded": ProviderStatus.SUCCEEDED,
    "success": ProviderStatus.SUCCEEDED,
    "completed": ProviderStatus.SUCCEEDED,
    "failed": ProviderStatus.FAILED,
    "failure": ProviderStatus.FAILED,
    "error": ProviderStatus.FAILED,
}


def normalise_status(word: str) -> ProviderStatus | None:
    """Map any provider status word to ours; ``None`` when the word is unknown."""
    return _STATUS_WORDS.get(word.strip().lower())


VIDEO = "video"
IMAGE = "image"


@dataclass(frozen=True)
class ProviderVideo:
    """One output as the provider describes it: a video or (``kind`` :data:`IMAGE`) an image.

    ``watermark_url`` is the watermarked copy a request with ``watermark_info.enabled`` gets
    beside the clean file.
    """

    index: int
    provider_video_id: str | None
    url: str
    duration: str | None = None  # a string on the wire ("6.041"); kept as given
    watermark_url: str | None = None
    kind: str = VIDEO


@dataclass(frozen=True)
class ProviderTaskState:
    """What the provider says about one task at one moment."""

    task_id: str
    status: ProviderStatus
    status_message: str = ""
    external_task_id: str | None = None
    cost: str | None = None  # final_unit_deduction, a string on the wire
    # final_balance_deduction: what the account's balance (not its resource pack) paid
    balance_deduction: str | None = None
    created_at_ms: int | None = None
    updated_at_ms: int | None = None
    videos: tuple[ProviderVideo, ...] = field(default_factory=tuple)  # videos, then images
    # The newer generation's billing[] entries, as given (only the JSON objects among them).
    billing: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
