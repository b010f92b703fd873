"""The registry: registering, loading plugins by name, file and entry point, and lookups."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

import pytest

from handlers import Event, on
from handlers.errors import UnknownHandler
from handlers.loading import module_name_for
from handlers.registry import Handler, HandlerRegistry, build_registry
from service.errors import ConfigurationError, OmnihookError

SIDECAR = "handlers.builtin.sidecar:write_sidecar"
POSTER = "handlers.builtin.poster:write_poster"


def write_plugin(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


PLUGIN = """
    from handlers import on
    from handlers.builtin.sidecar import write_sidecar  # imported, not defined here: skipped

    seen = []

    @on("video.downloaded")
    async def publish(event):
        seen.append(event.id)

    def helper(event):
        return None

    @on("*", timeout=3, retries=[1, 2])
    def audit(event):
        seen.append(event.type)

    @on("task.failed", "task.completed")
    def notify(event):
        seen.append(event.type)
"""


# -- register -------------------------------------------------------------------------------


def test_register_describes_the_handler() -> None:
    @on("task.failed", timeout=5, retries=[1])
    def alert(event: Event) -> None: ...

    registry = HandlerRegistry()
    handler = registry.register(alert, source="mine")

    assert handler == Handler(
        name=f"{__name__}:test_register_describes_the_handler.<locals>.alert",
        func=alert,
        event_types=frozenset({"task.failed"}),
        timeout=5.0,
        retries=(1.0,),
        source="mine",
    )
    assert registry.get(handler.name) is handler
    assert list(registry) == [handler]


def test_registering_the_same_function_twice_is_a_no_op() -> None:
    @on("task.failed")
    def alert(event: Event) -> None: ...

    registry = HandlerRegistry()
    first = registry.register(alert, source="a")
    second = registry.register(alert, source="b")

    assert second is first
    assert len(registry) == 1


def test_two_functions_with_one_name_are_refused() -> None:
    def make() -> Callable[[Event], None]:
        @on("task.failed")
        def alert(event: Event) -> None: ...

        return alert

    registry = HandlerRegistry()
    registry.register(make(), source="first")
    with pytest.raises(ConfigurationError, match=r"'second'.*already registered by 'first'"):
        registry.register(make(), source="second")


def test_an_undecorated_function_is_refused() -> None:
    def plain(event: Event) -> None: ...

    with pytest.raises(ConfigurationError, match=r"'mine'.*not decorated with @on"):
        HandlerRegistry().register(plain, source="mine")


def test_an_unknown_event_type_is_refused_naming_the_plugin() -> None:
    @on("video.downloded")
    def typo(event: Event) -> None: ...

    registry = HandlerRegistry()
    with pytest.raises(ConfigurationError) as caught:
        registry.register(typo, source="my_plugins.py")

    message = str(caught.value)
    assert "'my_plugins.py'" in message
    assert "typo" in message
    assert "'video.downloded'" in message
    assert "did you mean 'video.downloaded'" in message
    assert len(registry) == 0


# -- lookups ----------------------------------------------------------------------------------


def test_handlers_for_includes_star_in_registration_order() -> None:
    @on("task.failed")
    def first(event: Event) -> None: ...

    @on("*")
    def everything(event: Event) -> None: ...

    @on("task.failed", "task.completed")
    def last(event: Event) -> None: ...

    registry = HandlerRegistry()
    for func in (first, everything, last):
        registry.register(func, source="test")

    assert [h.func for h in registry.handlers_for("task.failed")] == [first, everything, last]
    assert [h.func for h in registry.handlers_for("task.completed")] == [everything, last]
    assert [h.func for h in registry.handlers_for("task.submitted")] == [everything]


def test_handlers_for_an_unknown_type_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown event type 'nope'"):
        HandlerRegistry().handlers_for("nope")


def test_get_an_unknown_name_is_a_clear_key_error() -> None:
    with pytest.raises(UnknownHandler) as caught:
        HandlerRegistry().get("gone:handler")

    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, OmnihookError)
    assert str(caught.value).startswith("no handler named 'gone:handler' is registered")
    assert "gone:handler" not in HandlerRegistry()


# -- load_spec: files -------------------------------------------------------------------------


def test_load_a_py_file(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "my_handlers.py", PLUGIN)
    registry = HandlerRegistry()

    loaded = registry.load_spec(str(path))

    module = module_name_for(path.resolve())
    assert [h.name for h in loaded] == [
        f"{module}:publish",
        f"{module}:audit",
        f"{module}:notify",
    ]
    assert list(registry) == loaded
    assert {h.source for h in loaded} == {str(path)}
    audit = registry.get(f"{module}:audit")
    assert (audit.event_types, audit.timeout, audit.retries) == (frozenset("*"), 3.0, (1.0, 2.0))


def test_a_file_listed_twice_is_loaded_once(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "twice.py", PLUGIN)
    registry = HandlerRegistry()

    first = registry.load_spec(str(path))
    second = registry.load_spec(f" {path} ")

    assert second == first
    assert len(registry) == 3


def test_file_handler_names_are_stable_across_registries(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "stable.py", PLUGIN)

    names = [[h.name for h in HandlerRegistry().load_spec(str(path))] for _ in range(2)]

    assert names[0] == names[1]
    assert module_name_for(path.resolve()) == module_name_for(path.resolve())


def test_same_named_files_in_two_directories_do_not_collide(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    registry = HandlerRegistry()

    registry.load_spec(str(write_plugin(tmp_path / "a", "plugin.py", PLUGIN)))
    registry.load_spec(str(write_plugin(tmp_path / "b", "plugin.py", PLUGIN)))

    assert len(registry) == 6


def test_a_relative_file_path_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(tmp_path, "relative.py", PLUGIN)
    monkeypatch.chdir(tmp_path)

    assert len(HandlerRegistry().load_spec("relative.py")) == 3


def test_a_missing_file_names_the_spec(tmp_path: Path) -> None:
    spec = str(tmp_path / "missing.py")
    with pytest.raises(ConfigurationError, match=r"'.*missing\.py'.*no such file"):
        HandlerRegistry().load_spec(spec)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("def broken(:\n", "SyntaxError"),
        ("import omnihook_missing_dependency_xyz\n", "ModuleNotFoundError"),
        ("from handlers import not_there\n", "ImportError"),
        ("raise RuntimeError('no config')\n", "RuntimeError: no config"),
    ],
)
def test_a_broken_plugin_file_is_a_configuration_error_naming_it(
    tmp_path: Path, source: str, problem: str
) -> None:
    path = write_plugin(tmp_path, "broken.py", source)

    with pytest.raises(ConfigurationError) as caught:
        HandlerRegistry().load_spec(str(path))

    assert f"handler plugin {str(path)!r} failed to import" in str(caught.value)
    assert problem in str(caught.value)
    assert caught.value.__cause__ is not None


def test_a_fixed_plugin_file_loads_after_a_failure(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "flaky.py", "raise RuntimeError('oops')\n")
    registry = HandlerRegistry()
    with pytest.raises(ConfigurationError):
        registry.load_spec(str(path))

    write_plugin(tmp_path, "flaky.py", PLUGIN)

    assert len(registry.load_spec(str(path))) == 3


def test_an_unknown_event_type_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = write_plugin(
        tmp_path,
        "typo.py",
        """
        from handlers import on

        @on("task.done")
        def handler(event):
            pass
        """,
    )

    with pytest.raises(ConfigurationError, match=r"typo\.py'.*unknown event type 'task\.done'"):
        HandlerRegistry().load_spec(str(path))


def test_a_plugin_without_handlers_is_loaded_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_plugin(tmp_path, "empty.py", "VALUE = 1\n")

    with caplog.at_level(logging.WARNING, logger="handlers.registry"):
        assert HandlerRegistry().load_spec(str(path)) == []

    assert "defines no @on handlers" in caplog.text


# -- load_spec: module names ------------------------------------------------------------------


def test_load_a_module_by_name() -> None:
    registry = HandlerRegistry()

    loaded = registry.load_spec("handlers.builtin.sidecar")

    assert [(h.name, h.source) for h in loaded] == [(SIDECAR, "handlers.builtin.sidecar")]


def test_load_a_package_module_by_dotted_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = f"omnihook_test_pkg_{tmp_path.name.replace('-', '_')}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    write_plugin(tmp_path / package, "plugins.py", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))

    loaded = HandlerRegistry().load_spec(f"{package}.plugins")

    assert [h.name for h in loaded] == [
        f"{package}.plugins:publish",
        f"{package}.plugins:audit",
        f"{package}.plugins:notify",
    ]


@pytest.mark.parametrize("spec", ["omnihook_no_such_plugin", "handlers.no_such_plugin"])
def test_an_unimportable_module_name_names_the_spec(spec: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        HandlerRegistry().load_spec(spec)

    assert f"handler plugin {spec!r}" in str(caught.value)
    assert "is not a .py file" in str(caught.value)


# -- entry points -----------------------------------------------------------------------------


def entry_points_of(*entry_points: EntryPoint) -> Callable[[str], Iterable[EntryPoint]]:
    return lambda group: [ep for ep in entry_points if ep.group == group]


def ep(name: str, value: str, group: str = "omnihook.handlers") -> EntryPoint:
    return EntryPoint(name=name, value=value, group=group)


def test_entry_points_to_a_module_and_to_a_function() -> None:
    registry = HandlerRegistry()

    loaded = registry.load_entry_points(
        discover=entry_points_of(
            ep("sidecar-module", "handlers.builtin.sidecar"),
            ep("sidecar-function", SIDECAR),
            ep("elsewhere", "omnihook_not_loaded", group="other.group"),
        )
    )

    assert [h.name for h in loaded] == [SIDECAR, SIDECAR]
    assert len(registry) == 1  # the same function twice is one handler
    assert registry.get(SIDECAR).source == "entry point sidecar-module"


def test_entry_points_of_a_fake_installed_distribution(tmp_path: Path) -> None:
    dist_info = tmp_path / "omnihook_example-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: omnihook-example\n")
    (dist_info / "entry_points.txt").write_text(
        f"[omnihook.handlers]\nsidecar = {SIDECAR}\n\n[console_scripts]\nx = os:getcwd\n"
    )

    def discover(group: str) -> list[EntryPoint]:
        return [
            entry_point
            for dist in distributions(path=[str(tmp_path)])
            for entry_point in dist.entry_points.select(group=group)
        ]

    registry = HandlerRegistry()
    registry.load_entry_points(discover=discover)

    assert [(h.name, h.source) for h in registry] == [(SIDECAR, "entry point sidecar")]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("omnihook_no_such_plugin", "failed to import: ModuleNotFoundError"),
        ("handlers.builtin.sidecar:nope", "failed to import: AttributeError"),
        ("os:getcwd", "neither a module nor an @on-decorated function"),
    ],
)
def test_a_broken_entry_point_names_it(value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        HandlerRegistry().load_entry_points(discover=entry_points_of(ep("broken", value)))

    assert f"entry point broken ({value})" in str(caught.value)
    assert problem in str(caught.value)


# -- build_registry ---------------------------------------------------------------------------


def test_build_registry_loads_builtins_first_then_the_specs(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "mine.py", PLUGIN)

    registry = build_registry([str(path), " "], entry_points=False)

    handlers = list(registry)
    assert [(h.name, h.source) for h in handlers[:2]] == [
        (SIDECAR, "builtin"),
        (POSTER, "builtin"),
    ]
    assert [h.source for h in handlers[2:]] == [str(path)] * 3


def test_build_registry_without_builtins() -> None:
    assert len(build_registry([], builtins=False, entry_points=False)) == 0


def test_build_registry_with_the_installed_entry_points(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "last.py", PLUGIN)

    handlers = list(build_registry([str(path)]))

    assert handlers[0].source == "builtin"
    assert handlers[-1].source == str(path)


def test_each_app_gets_its_own_registry(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "only_here.py", PLUGIN)

    with_plugin = build_registry([str(path)], entry_points=False)
    without = build_registry([], entry_points=False)

    assert len(with_plugin) == len(without) + 3
