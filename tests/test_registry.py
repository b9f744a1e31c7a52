"""Registry behaviour with in-process fake plugins: good, broken, raising, duplicate, misspelled."""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import sys
import types

import pytest

import clgym_core as cl
from clgym_core import registry as registry_module
from clgym_core.algorithm import Algorithm
from clgym_core.errors import RegistryError
from clgym_core.hookspecs import hookimpl
from clgym_core.registry import Registry
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin


class Alpha(Algorithm):
    """An algorithm used by the registry tests."""

    name = "alpha"


class OtherAlpha(Algorithm):
    """Another class claiming the name alpha."""

    name = "alpha"


class NoName(Algorithm):
    """Has no registry name."""


class FakeDist:
    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, entries: dict[str, tuple[str, str]]) -> None:
    """Make ``entry_points(group="clgym")`` return entries name -> (module:attr value, distribution)."""
    eps = []
    for name, (value, dist) in entries.items():
        ep = importlib_metadata.EntryPoint(name=name, value=value, group="clgym")
        ep = ep._for(FakeDist(dist, "9.9")) if hasattr(ep, "_for") else ep
        eps.append(ep)

    def entry_points(group: str | None = None, **_: object):
        return [e for e in eps if group in (None, "clgym")]

    monkeypatch.setattr(registry_module.importlib_metadata, "entry_points", entry_points)


def test_good_plugin_registers_by_name_and_class_name() -> None:
    with isolated_registry({"good": make_plugin(algorithms=[Alpha], benchmarks=[SyntheticBlobs])}) as reg:
        assert reg.get("algorithm", "alpha") is Alpha
        assert reg.get("algorithms", "Alpha") is Alpha  # class name and plural kind work too
        assert reg.get("benchmark", "Synthetic-Blobs") is SyntheticBlobs  # names are normalised
        assert reg.plugins["good"].hooks == ["clgym_register_algorithms", "clgym_register_benchmarks"]
        assert reg.problems() == []
        # The paper's lazy API resolves through the same registry.
        assert cl.algorithms.Alpha is Alpha
        assert cl.benchmarks.synthetic_blobs is SyntheticBlobs
        with pytest.raises(AttributeError, match="unknown algorithm 'Nope'"):
            cl.algorithms.Nope


def test_builtins_come_through_the_same_hooks() -> None:
    with isolated_registry() as reg:
        info = reg.info("backbone", "mlp")
        assert info.plugin.name == "clgym_core" and info.plugin.distribution == "clgym-core"
        assert "clgym_register_backbones" in reg.plugins["clgym_core"].hooks


def test_unknown_name_lists_close_matches_installed_names_and_broken_plugins() -> None:
    class Broken:
        @staticmethod
        @hookimpl
        def clgym_register_algorithms():
            raise RuntimeError("boom")

    with isolated_registry({"good": make_plugin(algorithms=[Alpha]), "bad": Broken()}) as reg:
        with pytest.raises(RegistryError) as err:
            reg.get("algorithm", "alpah")
    message = str(err.value)
    assert "unknown algorithm 'alpah'" in message
    assert "did you mean alpha?" in message
    assert "installed algorithms: alpha" in message
    assert "failed to load: bad" in message
    assert "\n" not in message


def test_raising_hook_is_one_line_problem_and_others_keep_working() -> None:
    class Raising:
        @staticmethod
        @hookimpl
        def clgym_register_algorithms():
            raise ValueError("cannot build\nmultiline")

    with isolated_registry({"raising": Raising(), "good": make_plugin(algorithms=[Alpha])}) as reg:
        assert reg.get("algorithm", "alpha") is Alpha
        problems = reg.problems()
    assert problems == ["plugin raising ((in-process) ): hook clgym_register_algorithms raised ValueError: cannot build multiline"]


def test_duplicate_name_is_an_error_naming_both_providers() -> None:
    plugins = {"first": make_plugin(algorithms=[Alpha]), "second": make_plugin(algorithms=[OtherAlpha])}
    with isolated_registry(plugins) as reg:
        with pytest.raises(RegistryError, match="registered by more than one plugin") as err:
            reg.get("algorithm", "alpha")
        assert "first" in str(err.value) and "second" in str(err.value)
        assert any("more than one plugin" in p for p in reg.problems())


def test_misspelled_hook_is_an_error() -> None:
    class Misspelled:
        @staticmethod
        @hookimpl
        def clgym_register_algorithm():  # missing the final "s"
            return [Alpha]

    with isolated_registry({"typo": Misspelled()}) as reg:
        assert reg.problems() == [
            "plugin typo ((in-process) ): hook clgym_register_algorithm matches no clgym hook "
            "(did you mean clgym_register_algorithms?)"
        ]
        with pytest.raises(RegistryError):
            reg.get("algorithm", "alpha")


def test_invalid_component_class_is_reported() -> None:
    with isolated_registry({"p": make_plugin(algorithms=[NoName, Alpha])}) as reg:
        assert reg.names("algorithm") == ["alpha"]
        assert any("name must be a snake_case string" in p for p in reg.problems())


def test_plugin_failing_to_import_is_reported_and_the_rest_load(monkeypatch: pytest.MonkeyPatch) -> None:
    good = types.ModuleType("clgym_fake_good_plugin")
    good.clgym_register_algorithms = hookimpl(lambda: [Alpha])
    monkeypatch.setitem(sys.modules, "clgym_fake_good_plugin", good)
    fake_entry_points(
        monkeypatch,
        {
            "good": ("clgym_fake_good_plugin", "clgym-fake-good"),
            "broken": ("clgym_no_such_module_xyz", "clgym-fake-broken"),
        },
    )
    reg = Registry(autoload=True, blocked=set())
    assert reg.get("algorithm", "alpha") is Alpha
    assert reg.plugins["good"].distribution == "clgym-fake-good"
    problems = reg.problems()
    assert len(problems) == 1
    assert problems[0].startswith("plugin broken (clgym-fake-broken 9.9): failed to import clgym_no_such_module_xyz")
    assert "ModuleNotFoundError" in problems[0]


def test_switches_block_and_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    good = types.ModuleType("clgym_fake_good_plugin")
    good.clgym_register_algorithms = hookimpl(lambda: [Alpha])
    monkeypatch.setitem(sys.modules, "clgym_fake_good_plugin", good)
    fake_entry_points(monkeypatch, {"good": ("clgym_fake_good_plugin", "clgym-fake-good")})

    monkeypatch.setenv(registry_module.ENV_BLOCK, "good, other")
    reg = Registry()
    assert reg.plugins["good"].blocked and reg.names("algorithm") == []

    monkeypatch.delenv(registry_module.ENV_BLOCK)
    monkeypatch.setenv(registry_module.ENV_DISABLE, "1")
    reg = Registry()
    assert "good" not in reg.plugins and reg.names("algorithm") == []
    assert reg.names("backbone") == ["mlp"]  # built-ins still load
    with pytest.raises(RegistryError, match="autoloading is off"):
        reg.get("algorithm", "alpha")

    monkeypatch.delenv(registry_module.ENV_DISABLE)
    assert Registry().names("algorithm") == ["alpha"]


def test_trace_switch_prints_hook_calls(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(registry_module.ENV_TRACE, "1")
    with isolated_registry({"good": make_plugin(algorithms=[Alpha])}) as reg:
        reg.names("algorithm")
    assert "good.clgym_register_algorithms()" in capsys.readouterr().err


def test_unregister_removes_components() -> None:
    with isolated_registry({"good": make_plugin(algorithms=[Alpha])}) as reg:
        assert reg.names("algorithm") == ["alpha"]
        reg.unregister("good")
        assert reg.names("algorithm") == []


def test_hook_returning_a_class_instead_of_a_list_is_one_line_problem() -> None:
    class NotAList:
        @staticmethod
        @hookimpl
        def clgym_register_algorithms():
            return Alpha

    with isolated_registry({"single": NotAList(), "good": make_plugin(algorithms=[OtherAlpha])}) as reg:
        assert reg.get("algorithm", "alpha") is OtherAlpha
        assert reg.problems() == [
            "plugin single ((in-process) ): hook clgym_register_algorithms returned type, expected a list of classes"
        ]


def test_problems_are_not_repeated_when_the_registry_collects_again() -> None:
    with isolated_registry({"p": make_plugin(algorithms=[NoName, Alpha])}) as reg:
        first = reg.problems()
        reg.register(make_plugin(benchmarks=[SyntheticBlobs]), name="other")  # forces a new collect
        reg.unregister("other")
        assert reg.problems() == first and len(first) == 1


# ---- hooks go through pluggy; plugins that exit or interrupt are isolated ----------------------------


def _module_raising(monkeypatch: pytest.MonkeyPatch, name: str, exc: BaseException) -> None:
    """A module that raises ``exc`` while it is imported."""
    import importlib.abc
    import importlib.util

    class Loader(importlib.abc.Loader):
        def create_module(self, spec):  # noqa: ANN001
            return None

        def exec_module(self, module):  # noqa: ANN001
            raise exc

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):  # noqa: ANN001
            return importlib.util.spec_from_loader(fullname, Loader()) if fullname == name else None

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()], ids=["sys.exit", "KeyboardInterrupt"])
def test_plugin_exiting_or_interrupting_at_import_is_a_broken_plugin(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    good = types.ModuleType("clgym_fake_good_plugin")
    good.clgym_register_algorithms = hookimpl(lambda: [Alpha])
    monkeypatch.setitem(sys.modules, "clgym_fake_good_plugin", good)
    _module_raising(monkeypatch, "clgym_fake_exiting_plugin", exc)
    fake_entry_points(monkeypatch, {
        "good": ("clgym_fake_good_plugin", "clgym-fake-good"),
        "exits": ("clgym_fake_exiting_plugin", "clgym-fake-exits"),
    })
    reg = Registry(autoload=True, blocked=set())
    assert reg.get("algorithm", "alpha") is Alpha
    (problem,) = reg.problems()
    assert problem.startswith("plugin exits (clgym-fake-exits 9.9): failed to import clgym_fake_exiting_plugin")
    assert type(exc).__name__ in problem


def test_hook_raising_system_exit_is_a_problem_not_an_exit() -> None:
    class Exiting:
        @staticmethod
        @hookimpl
        def clgym_register_algorithms() -> list[type]:
            raise SystemExit(4)

    with isolated_registry({"exits": Exiting(), "good": make_plugin(algorithms=[Alpha])}) as reg:
        assert reg.get("algorithm", "alpha") is Alpha
        assert any("clgym_register_algorithms raised SystemExit" in p for p in reg.problems())


@pytest.mark.parametrize("plugin_code", ["lets_it_through", "swallows_it", "turns_it_into_an_error"])
def test_a_real_ctrl_c_during_plugin_import_still_interrupts(monkeypatch: pytest.MonkeyPatch, plugin_code: str) -> None:
    import os
    import signal

    import importlib.abc
    import importlib.util

    class Loader(importlib.abc.Loader):
        def create_module(self, spec):  # noqa: ANN001
            return None

        def exec_module(self, module):  # noqa: ANN001
            try:
                os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while this plugin imports
                import time

                time.sleep(1)
            except KeyboardInterrupt:  # as torch 2.4's torch._C does with the imports it makes
                if plugin_code == "lets_it_through":
                    raise
                if plugin_code == "turns_it_into_an_error":
                    raise ValueError("half-imported module") from None

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):  # noqa: ANN001
            return importlib.util.spec_from_loader(fullname, Loader()) if fullname == module_name else None

    module_name = f"clgym_fake_slow_{plugin_code}"
    monkeypatch.delitem(sys.modules, module_name, raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    fake_entry_points(monkeypatch, {"slow": (module_name, "clgym-fake-slow")})
    with pytest.raises(KeyboardInterrupt):
        Registry(autoload=True, blocked=set())


def test_a_real_ctrl_c_swallowed_by_a_hook_still_interrupts() -> None:
    import os
    import signal

    class Swallowing:
        @staticmethod
        @hookimpl
        def clgym_register_algorithms() -> list[type]:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                import time

                time.sleep(1)
            except KeyboardInterrupt:
                pass
            return []

    with isolated_registry({"swallows": Swallowing(), "good": make_plugin(algorithms=[Alpha])}) as reg:
        with pytest.raises(KeyboardInterrupt):
            reg.get("algorithm", "alpha")


def test_hook_implementation_may_take_fewer_arguments_than_its_spec() -> None:
    import typer

    seen = []

    class Commands:
        @staticmethod
        @hookimpl
        def clgym_register_commands() -> None:  # the spec passes `app`; this one ignores it
            seen.append("called")

    with isolated_registry({"cmds": Commands()}) as reg:
        reg.register_commands(typer.Typer())
        assert seen == ["called"]
        assert reg.problems() == []


def test_plugin_adds_a_cli_command_and_its_errors_are_one_line() -> None:
    import typer
    from typer.testing import CliRunner

    from clgym_core.cli import build_app
    from clgym_core.errors import ClgymError

    def hello(name: str) -> None:
        """Say hello."""
        if name == "bad":
            raise ClgymError("hello: NAME must not be bad")
        typer.echo(f"hello {name}")

    class Commands:
        @staticmethod
        @hookimpl
        def clgym_register_commands(app: typer.Typer) -> None:
            app.command("hello")(hello)

    class Broken:
        @staticmethod
        @hookimpl
        def clgym_register_commands(app: typer.Typer) -> None:
            raise RuntimeError("no")

    with isolated_registry({"cmds": Commands(), "broken": Broken()}) as reg:
        app = build_app(plugins=True)
        runner = CliRunner()
        assert runner.invoke(app, ["hello", "world"]).output.strip() == "hello world"
        bad = runner.invoke(app, ["hello", "bad"])
        assert bad.exit_code == 2 and bad.output.strip() == "error: hello: NAME must not be bad"
        assert runner.invoke(app, ["list"]).exit_code == 0  # the built-ins still work
        assert any("broken" in p and "clgym_register_commands raised RuntimeError" in p for p in reg.problems())
