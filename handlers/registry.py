"""The handlers an app knows, in the order they were registered.

A :class:`HandlerRegistry` belongs to one app instance (never a module global), so two apps in
one process, or two tests, never see each other's plugins. :func:`build_registry` fills one from
the three sources of CONTRACT.md "Handler plugins", built-ins first, so the built-in behaviour
goes through exactly the path user plugins take.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from handlers.api import ALL_EVENTS, EVENT_TYPES, Event, spec_of
from handlers.builtin import BUILTIN_MODULES
from handlers.errors import UnknownHandler
from handlers.loading import (
    ENTRY_POINT_GROUP,
    EntryPointSource,
    import_file,
    import_module_named,
    installed_entry_points,
    load_entry_point,
    looks_like_path,
)
from service.errors import ConfigurationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handler:
    """One registered handler.

    ``name`` (``"module:qualname"``) is its stable identity: jobs store it and find the handler
    again with :meth:`HandlerRegistry.get`, possibly in another process after a restart.
    """

    name: str
    func: Callable[[Event], Any]
    event_types: frozenset[str]
    timeout: float | None
    retries: tuple[float, ...] | None
    source: str  # "builtin", "entry point NAME", or the OMNIHOOK_HANDLERS item

    def handles(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types


class HandlerRegistry:
    """Handlers by name, in registration order."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}  # dicts keep insertion order: the run order

    def register(self, func: Callable[..., Any], *, source: str) -> Handler:
        """Register one ``@on``-decorated function; registering it again is a no-op."""
        spec = spec_of(func)
        if spec is None:
            raise ConfigurationError(
                f"handler plugin {source!r}: {func!r} is not decorated with @on(...)"
            )
        name = handler_name(func)
        existing = self._handlers.get(name)
        if existing is not None:
            if existing.func is func:
                return existing
            raise ConfigurationError(
                f"handler plugin {source!r}: a different handler named {name!r} is already "
                f"registered by {existing.source!r}"
            )
        _check_event_types(spec.event_types, name=name, source=source)
        handler = Handler(
            name=name,
            func=func,
            event_types=spec.event_types,
            timeout=spec.timeout,
            retries=spec.retries,
            source=source,
        )
        self._handlers[name] = handler
        logger.debug(
            "registered handler %s from %s",
            name,
            source,
            extra={"action": "handler_registered", "handler": name, "source": source},
        )
        return handler

    def load_module(self, module: ModuleType, *, source: str) -> list[Handler]:
        """Register every ``@on`` function defined in ``module``, in definition order.

        Functions the module merely imports are skipped: they belong to their own plugin, and
        registering them here would run them twice under two sources.
        """
        found = [
            self.register(value, source=source)
            for value in list(vars(module).values())
            if spec_of(value) is not None and getattr(value, "__module__", None) == module.__name__
        ]
        if not found:
            logger.warning(
                "handler plugin %s (%s) defines no @on handlers",
                source,
                module.__name__,
                extra={"action": "handler_plugin_empty", "source": source},
            )
        return found

    def load_spec(self, spec: str, *, source: str | None = None) -> list[Handler]:
        """Load one ``OMNIHOOK_HANDLERS`` item: a dotted module name or a ``.py`` file path."""
        spec = spec.strip()
        plugin = source or spec
        if looks_like_path(spec):
            module = import_file(spec, plugin=plugin)
        else:
            module = import_module_named(spec, plugin=plugin)
        return self.load_module(module, source=plugin)

    def load_entry_points(
        self,
        group: str = ENTRY_POINT_GROUP,
        *,
        discover: EntryPointSource = installed_entry_points,
    ) -> list[Handler]:
        """Load the plugins installed packages declare; each names a module or a handler."""
        loaded: list[Handler] = []
        for entry_point in discover(group):
            source = f"entry point {entry_point.name}"
            plugin = f"{source} ({entry_point.value})"
            target = load_entry_point(entry_point, plugin=plugin)
            if isinstance(target, ModuleType):
                loaded.extend(self.load_module(target, source=source))
            elif callable(target) and spec_of(target) is not None:
                loaded.append(self.register(target, source=source))
            else:
                raise ConfigurationError(
                    f"handler plugin {plugin!r}: points to {target!r}, which is neither a "
                    "module nor an @on-decorated function"
                )
        return loaded

    def handlers_for(self, event_type: str) -> list[Handler]:
        """The handlers of ``event_type`` (``"*"`` ones included), in registration order."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        return [handler for handler in self._handlers.values() if handler.handles(event_type)]

    def get(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownHandler(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[Handler]:
        return iter(list(self._handlers.values()))

    def __len__(self) -> int:
        return len(self._handlers)

    def __repr__(self) -> str:
        return f"<HandlerRegistry {list(self._handlers)}>"


def build_registry(
    specs: Sequence[str], *, builtins: bool = True, entry_points: bool = True
) -> HandlerRegistry:
    """A registry with the built-ins, then the installed entry points, then ``specs``."""
    registry = HandlerRegistry()
    if builtins:
        for module_name in BUILTIN_MODULES:
            registry.load_spec(module_name, source="builtin")
    if entry_points:
        registry.load_entry_points()
    for spec in specs:
        if spec.strip():
            registry.load_spec(spec)
    return registry


def handler_name(func: Callable[..., Any]) -> str:
    """``"module:qualname"``, e.g. ``"handlers.builtin.sidecar:write_sidecar"``."""
    module = getattr(func, "__module__", None) or "<unknown>"
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}:{qualname}"


def _check_event_types(event_types: frozenset[str], *, name: str, source: str) -> None:
    for event_type in sorted(event_types - EVENT_TYPES - {ALL_EVENTS}):
        close = difflib.get_close_matches(event_type, sorted(EVENT_TYPES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigurationError(
            f"handler plugin {source!r}: {name} subscribes to unknown event type "
            f"{event_type!r}{hint}; known types: {', '.join(sorted(EVENT_TYPES))} or '*'"
        )
