"""Importing plugin code: by dotted module name, by ``.py`` file path, by entry point.

Every failure becomes a :class:`ConfigurationError` that names the plugin as the user wrote it
(the ``OMNIHOOK_HANDLERS`` item or the entry point) and what went wrong, because a plugin that
fails to load must stop the service at startup, not silently drop its handlers.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType

from service.errors import ConfigurationError

#: The entry-point group installed packages use to offer handler plugins.
ENTRY_POINT_GROUP = "omnihook.handlers"

#: Lists the entry points of a group; injectable so tests need no installed distribution.
EntryPointSource = Callable[[str], Iterable[EntryPoint]]


def installed_entry_points(group: str) -> Iterable[EntryPoint]:
    """The entry points of ``group`` in every installed distribution."""
    return entry_points(group=group)


def looks_like_path(spec: str) -> bool:
    """A ``.py`` suffix or a path separator: the user meant a file, not a module name."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def import_module_named(name: str, *, plugin: str) -> ModuleType:
    """``importlib.import_module(name)``; failures become ConfigurationError naming ``plugin``."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_same_or_parent(exc.name, name):
            raise ConfigurationError(
                f"handler plugin {plugin!r}: no module named {exc.name!r} is importable and "
                f"{name!r} is not a .py file (give a file as a path, e.g. ./{name}.py)"
            ) from exc
        # The plugin exists but one of *its* imports is missing: say so, not "not found".
        raise _import_failed(plugin, exc) from exc
    except (Exception, SystemExit) as exc:  # a plugin may raise anything while importing
        raise _import_failed(plugin, exc) from exc


def import_file(path_text: str, *, plugin: str) -> ModuleType:
    """Execute a ``.py`` file as a module; failures become ConfigurationError naming ``plugin``.

    The module name is derived from the file's absolute path, so it is unique (two
    ``handlers.py`` in different directories do not collide) and stable across restarts: handler
    names (``module:qualname``) are stored in queued jobs and must still resolve after one.
    """
    path = Path(path_text).expanduser().resolve()
    if path.suffix != ".py":
        raise ConfigurationError(f"handler plugin {plugin!r}: a plugin file must end in .py")
    if not path.is_file():
        raise ConfigurationError(f"handler plugin {plugin!r}: no such file {str(path)!r}")
    name = module_name_for(path)
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded  # the same file listed twice: executing it again would duplicate state
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigurationError(f"handler plugin {plugin!r}: cannot load {str(path)!r}")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before executing, as a real import does: dataclasses, pickle and typing look
    # their module up in sys.modules while the file runs.
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise _import_failed(plugin, exc) from exc
    return module


def load_entry_point(entry_point: EntryPoint, *, plugin: str) -> object:
    """``entry_point.load()``; failures become ConfigurationError naming ``plugin``."""
    try:
        return entry_point.load()
    except (Exception, SystemExit) as exc:
        raise _import_failed(plugin, exc) from exc


def module_name_for(path: Path) -> str:
    """``omnihook_plugin_<stem>_<8 hex of the absolute path>``: unique, stable, importable."""
    stem = re.sub(r"\W", "_", path.stem)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return f"omnihook_plugin_{stem}_{digest}"


def _is_same_or_parent(missing: str, wanted: str) -> bool:
    return wanted == missing or wanted.startswith(missing + ".")


def _import_failed(plugin: str, exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"handler plugin {plugin!r} failed to import: {type(exc).__name__}: {exc}"
    )
