"""Scenario directives: how a test or demo steers one simulated task from its prompt.

Directives are ``[sim:NAME]`` or ``[sim:NAME=VALUE]`` tokens anywhere in the prompt (and, for
multi-shot requests, in any ``multi_prompt[*].prompt``). Names are case-insensitive; several may
be combined (``"a cat [sim:duplicate][sim:delay=0.2]"``). An unknown name, a bad value, or a
directive that has no meaning for the simulator's profile (``reorder``, ``early``, ``badsig``
and ``images`` under ``apimodels``, which calls back once, unsigned, with only ``resultUrls``)
makes the create fail with 1201, so a typo never passes silently.

A watermarked copy is no directive: as the real provider does, a request with
``watermark_info: {"enabled": true}`` gets a ``watermark_url`` beside each output's ``url``
(a distinct MP4, or PNG for an image) in the ``kling`` and ``newapi`` profiles; apimodels'
answer has no place for it.

=========================  ============================================================
directive                  effect
=========================  ============================================================
``[sim:fail]``             the task ends ``failed`` with "Image pixel is invalid"
``[sim:fail=MESSAGE]``     ...with ``MESSAGE`` as ``task_status_msg``
``[sim:reject=CODE]``      the create itself is refused with that §4 code (e.g. 1301)
``[sim:duplicate]``        every callback is sent twice (same ``webhook-id``)
``[sim:reorder]``          the final callback is sent before the ``processing`` one
``[sim:drop]``             no callbacks at all; queries still work
``[sim:early]``            the first callback (``submitted``) is delivered before the
                           create response is returned
``[sim:videos=N]``         N output videos (1..10, default 1)
``[sim:images=N]``         N output images beside the videos (0..10, default 0): 16x16
                           PNGs, in ``task_result.images`` (Content-Length, ETag, Range)
``[sim:media=FAULT]``      the CDN misbehaves for every file of the task: ``cut`` (the
                           first answer stops half-way, a ``Range`` resume then works),
                           ``expire`` (the URL first handed out answers 403; a query after
                           the refusal hands out a fresh signed URL that works), ``slow``
                           (bytes trickle: 4 kB every 20 ms)
``[sim:delay=SECONDS]``    extra delay before each callback (0..60)
``[sim:unsigned]``         callbacks carry no signature, even with a webhook secret
``[sim:badsig]``           callbacks carry a signature made with a wrong secret
``[sim:lose_answer]``      the create is accepted (the task runs and calls back) but its
                           answer is dropped: the status line and headers go out, then the
                           connection closes before the body (a lost answer to the client)
``[sim:lookup=FORM]``      which lookups by ``external_task_id`` find the task (``kling``
                           profile; the gateways find a task by the id they handed out
                           only): ``path`` (the default: all of them), ``query`` (the path
                           form answers 1203, ``?external_task_id=`` and the list find
                           it), ``list`` (only the list), ``none`` (no form: the list shows
                           it without its ``task_info``, only a duplicate create refusal
                           tells it exists)
=========================  ============================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from .errors import ERROR_CODES
from .media_faults import MEDIA_FAULTS

DEFAULT_FAILURE_MESSAGE = "Image pixel is invalid"
MAX_VIDEOS = 10
MAX_IMAGES = 10
MAX_DELAY_SECONDS = 60.0

_DIRECTIVE = re.compile(r"\[sim:([a-z_]+)(?:=([^\]]*))?\]", re.IGNORECASE)
_N = TypeVar("_N", int, float)
_FLAGS = frozenset({"duplicate", "reorder", "drop", "early", "unsigned", "badsig", "lose_answer"})
#: ``[sim:lookup=...]`` values, from the most to the least findable.
LOOKUP_FORMS = ("path", "query", "list", "none")


class ScenarioError(ValueError):
    """A directive is unknown or has a bad value; the message names it."""


@dataclass(frozen=True)
class Scenario:
    """What the directives of one request ask for; the default is a plain, successful task."""

    fail_message: str | None = None
    reject_code: int | None = None
    duplicate: bool = False
    reorder: bool = False
    drop: bool = False
    early: bool = False
    videos: int = 1
    images: int = 0
    media: str | None = None  # a fault of MEDIA_FAULTS for every file of the task
    delay: float = 0.0
    unsigned: bool = False
    badsig: bool = False
    lose_answer: bool = False
    lookup: str = "path"

    @property
    def fails(self) -> bool:
        return self.fail_message is not None

    def flags(self) -> frozenset[str]:
        """The names of the flag directives this scenario was given."""
        return frozenset(name for name in _FLAGS if getattr(self, name))

    def asks_for(self) -> frozenset[str]:
        """The flags given, and the other directives a profile may have no place for."""
        return self.flags() | ({"images"} if self.images else frozenset())


def parse_scenario(texts: Iterable[str]) -> Scenario:
    """Read every ``[sim:...]`` directive of ``texts`` into one :class:`Scenario`."""
    scenario = Scenario()
    for text in texts:
        for match in _DIRECTIVE.finditer(text):
            scenario = replace(scenario, **_parse_one(match.group(1).lower(), match.group(2)))
    if scenario.unsigned and scenario.badsig:
        raise ScenarioError("[sim:unsigned] and [sim:badsig] contradict each other")
    return scenario


def _parse_one(name: str, raw: str | None) -> dict[str, Any]:
    if name in _FLAGS:
        if raw is not None:
            raise ScenarioError(f"[sim:{name}] takes no value")
        return {name: True}
    if name == "fail":
        message = raw.strip() if raw is not None else ""
        return {"fail_message": message or DEFAULT_FAILURE_MESSAGE}
    if raw is None:
        raise ScenarioError(f"[sim:{name}] needs a value")
    if name == "reject":
        code = _number(name, raw, int)
        if code not in ERROR_CODES:
            raise ScenarioError(f"[sim:reject={raw}] is not an error code of the API")
        return {"reject_code": code}
    if name == "videos":
        count = _number(name, raw, int)
        if not 1 <= count <= MAX_VIDEOS:
            raise ScenarioError(f"[sim:videos] must be 1..{MAX_VIDEOS}")
        return {"videos": count}
    if name == "images":
        count = _number(name, raw, int)
        if not 0 <= count <= MAX_IMAGES:
            raise ScenarioError(f"[sim:images] must be 0..{MAX_IMAGES}")
        return {"images": count}
    if name == "media":
        fault = raw.strip().lower()
        if fault not in MEDIA_FAULTS:
            raise ScenarioError(f"[sim:media] must be one of {', '.join(MEDIA_FAULTS)}")
        return {"media": fault}
    if name == "delay":
        delay = _number(name, raw, float)
        if not 0 <= delay <= MAX_DELAY_SECONDS:
            raise ScenarioError(f"[sim:delay] must be 0..{MAX_DELAY_SECONDS:g} seconds")
        return {"delay": delay}
    if name == "lookup":
        form = raw.strip().lower()
        if form not in LOOKUP_FORMS:
            raise ScenarioError(f"[sim:lookup] must be one of {', '.join(LOOKUP_FORMS)}")
        return {"lookup": form}
    raise ScenarioError(f"unknown directive [sim:{name}]")


def _number(name: str, raw: str, kind: type[_N]) -> _N:
    try:
        return kind(raw.strip())
    except ValueError:
        raise ScenarioError(f"[sim:{name}={raw}] is not a {kind.__name__}") from None
