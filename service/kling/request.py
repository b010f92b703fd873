"""The body of ``POST /v1/tasks``: Kling's create fields (kling-api.md §3) plus our own two.

:func:`parse_submission` is the one way in. Given the provider shape, it first fills in that
provider's documented defaults (:mod:`.request_defaults`), then validates each field on its own
(types, choices, lengths, URLs and inline images), then the cross-field rules of
:mod:`.request_rules`, and raises :class:`~service.errors.InvalidRequest` listing every problem
with a dotted field path. Pydantic's own errors never leave this module. The parsed request
remembers its provider, so :meth:`SubmitRequest.provider_body` words it in that provider's
dialect (:mod:`.request_dialects`).

The body is decoded JSON, so the model is strict: ``"5"`` is not a number and ``1`` is not
``true``. The one coercion is ``duration``, which callers often send as a number; it is kept as
the string Kling expects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from service.errors import InvalidRequest, Problem
from service.kling.request_defaults import explain, with_defaults
from service.kling.request_dialects import dialect_problems, in_dialect
from service.kling.request_errors import RULES_ERROR, problems_of
from service.kling.request_media import http_url_problem, image_source_problem
from service.kling.request_rules import (
    MAX_DURATION,
    MIN_DURATION,
    O1,
    ModelName,
    submission_problems,
)

__all__ = ["ImageItem", "Shot", "SubmitRequest", "parse_submission"]

MAX_PROMPT: Final = 2500
MAX_SHOT_PROMPT: Final = 512
MAX_SHOTS: Final = 6
MAX_EXTERNAL_ID: Final = 128
MAX_METADATA_BYTES: Final = 16 * 1024
MAX_PRIORITY: Final = 1000  # queue priorities run from -1000 to 1000

# The validation context key that skips the cross-field rules (see _problems_of_what_parsed).
_FIELDS_ONLY: Final = "fields_only"
# The validation context key naming the provider shape (see SubmitRequest.provider).
_PROVIDER: Final = "provider"


def _invalid(message: str) -> PydanticCustomError:
    """A field error whose message is ours, word for word."""
    return PydanticCustomError("invalid", message)


def _seconds(low: int, high: int) -> BeforeValidator:
    """A duration: a string of whole seconds in low..high; a JSON integer is accepted too."""

    def check(value: object) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.isdecimal() and low <= int(value) <= high:
            return str(int(value))
        raise _invalid(f'must be a whole number of seconds from "{low}" to "{high}"')

    return BeforeValidator(check)


def _checked(problem_of: Callable[[str], str | None]) -> AfterValidator:
    def check(value: str) -> str:
        problem = problem_of(value)
        if problem is not None:
            raise _invalid(problem)
        return value

    return AfterValidator(check)


def _check_external_id(value: str) -> str:
    if not (
        1 <= len(value) <= MAX_EXTERNAL_ID
        and value.isprintable()
        and not any(c.isspace() for c in value)
    ):
        raise _invalid(f"must be 1 to {MAX_EXTERNAL_ID} printable characters, without spaces")
    return value


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(
            json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        )
    except (TypeError, ValueError) as exc:
        raise _invalid("must be a JSON object") from exc
    if size > MAX_METADATA_BYTES:
        raise _invalid(f"must be at most 16 KiB as JSON (this is {size} bytes)")
    return value


Duration = Annotated[str, _seconds(MIN_DURATION, MAX_DURATION)]
ShotDuration = Annotated[str, _seconds(1, MAX_DURATION)]
HttpUrl = Annotated[str, _checked(http_url_problem)]
ImageSource = Annotated[str, _checked(image_source_problem)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Shot(_Strict):
    """One shot of a customized multi-shot video."""

    index: int | None = None
    prompt: str = Field(min_length=1, max_length=MAX_SHOT_PROMPT)
    duration: ShotDuration


class ImageItem(_Strict):
    """A reference image, or the first/end frame when ``type`` says so."""

    image_url: ImageSource
    type: Literal["first_frame", "end_frame"] | None = None


class ElementItem(_Strict):
    """A subject from Kling's element library."""

    element_id: int = Field(gt=0)


class VideoItem(_Strict):
    """A video to take features from (``feature``) or to edit (``base``)."""

    video_url: HttpUrl
    refer_type: Literal["feature", "base"]
    keep_original_sound: Literal["yes", "no"] | None = None


class WatermarkInfo(_Strict):
    enabled: bool


class SubmitRequest(_Strict):
    """A validated submission. Fields left out by the caller stay ``None``."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: ModelName = Field(validation_alias=AliasChoices("model_name", "model"))
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT)
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT)
    multi_shot: bool | None = None
    shot_type: Literal["customize", "intelligence"] | None = None
    multi_prompt: list[Shot] | None = Field(default=None, min_length=1, max_length=MAX_SHOTS)
    image_list: list[ImageItem] | None = None
    element_list: list[ElementItem] | None = None
    video_list: list[VideoItem] | None = Field(default=None, max_length=1)
    sound: Literal["on", "off"] | None = None
    mode: Literal["std", "pro", "4k"] | None = None
    aspect_ratio: Literal["16:9", "9:16", "1:1"] | None = None
    duration: Duration | None = None
    cfg_scale: float | None = Field(default=None, ge=0, le=1)
    watermark_info: WatermarkInfo | None = None
    external_task_id: Annotated[str, AfterValidator(_check_external_id)] | None = None
    metadata: Annotated[dict[str, Any], AfterValidator(_check_metadata)] = Field(
        default_factory=dict
    )
    # Ours, not the provider's: queued tasks are sent highest priority first, then oldest.
    priority: int = Field(default=0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    # The provider shape whose defaults were filled in and whose dialect provider_body speaks.
    _provider: str | None = PrivateAttr(default=None)

    @property
    def provider(self) -> str | None:
        return self._provider

    @model_validator(mode="after")
    def _follow_the_rules(self, info: ValidationInfo) -> SubmitRequest:
        if info.context and info.context.get(_FIELDS_ONLY):
            return self
        if info.context:
            self._provider = info.context.get(_PROVIDER)
        problems = submission_problems(self, self.model_name)
        problems += dialect_problems(self, self._provider)
        if problems:
            raise PydanticCustomError(
                RULES_ERROR,
                "{summary}",
                {
                    "summary": "; ".join(f"{p.field}: {p.message}" for p in problems),
                    "problems": [(p.field, p.message) for p in problems],
                },
            )
        return self

    def provider_body(self, *, model_field: str = "model_name") -> dict[str, Any]:
        """The JSON body for the provider's create call.

        The Kling fields the caller gave plus the provider defaults filled in, in the
        provider's dialect, the model under ``model_field`` (``"model"`` for new-api gateways);
        without ``external_task_id``, ``metadata`` and ``callback_url``, which the caller adds
        (nor ``priority``, which is ours).
        """
        fields = self.model_dump(
            exclude_none=True,
            exclude={"model_name", "external_task_id", "metadata", "priority"},
        )
        return {model_field: self.model_name, **in_dialect(fields, self._provider)}


def parse_submission(data: object, *, provider: str | None = None) -> SubmitRequest:
    """Validate a decoded JSON body, ``provider``'s defaults filled in first (``None``: the
    provider-neutral rules, nothing filled). Raises InvalidRequest listing EVERY problem."""
    if not isinstance(data, dict):
        raise InvalidRequest([Problem("body", "must be a JSON object")])
    defaulted = with_defaults(data, provider)
    try:
        return SubmitRequest.model_validate(defaulted.body, context={_PROVIDER: provider})
    except ValidationError as exc:
        problems = problems_of(exc)
        if not any(error["type"] == RULES_ERROR for error in exc.errors()):
            problems += _problems_of_what_parsed(defaulted.body, exc, provider)
        raise InvalidRequest(explain(problems, defaulted, provider)) from exc


def _problems_of_what_parsed(
    data: dict[Any, Any], exc: ValidationError, provider: str | None
) -> list[Problem]:
    """The cross-field rules, run on the fields that did parse.

    Pydantic runs the rules only when every field is valid; a caller whose body has a type
    error and a broken rule should still hear about both. The broken fields are left out and
    the rest parsed again; rules about the model are skipped when the model itself is unusable.
    """
    broken = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    fields = {key: value for key, value in data.items() if key not in broken}
    model_known = "model_name" in fields or "model" in fields
    if not model_known:
        fields["model_name"] = O1  # a stand-in so the rest parses; the rules are told model=None
    try:
        parsed = SubmitRequest.model_validate(fields, context={_FIELDS_ONLY: True})
    except ValidationError:
        return []
    model = parsed.model_name if model_known else None
    problems = submission_problems(parsed, model, unknown=frozenset(broken))
    return problems + ([] if "mode" in broken else dialect_problems(parsed, provider))
