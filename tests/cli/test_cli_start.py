"""`sigsci-iga --help` starts without the database, HTTP and web machinery (counts, not times).

How long the start takes is measured by `bench/cli_start.py`; here a child process reports which
modules it imported, which stays true however loaded the machine is.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from sigsci_iga.cli import app as cli_app
from sigsci_iga.cli.lazy import LazyCommands, short_help

#: Imported by a command that needs them, never to print help.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "httpx",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic_settings",
    "lark",
    "yaml",
    "re2",
    "prometheus_client",
    "stamina",
    # Help is plain text, and an event loop is started only by the commands that need one.
    "rich",
    "asyncio",
)
#: Typer itself converts option values with pydantic, so only the top level, which converts
#: nothing before it prints, goes without it.
HEAVY_AT_THE_TOP = (*HEAVY, "pydantic")

#: Runs the CLI the way the console script does, then lists the heavy modules it imported.
CHILD = """
import json, sys
from sigsci_iga.cli.app import main
sys.argv = ["sigsci-iga", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
heavy = {heavy!r}
print(json.dumps(sorted(name for name in heavy if name in sys.modules)), file=sys.stderr)
"""

#: Runs the CLI, then lists the project's modules it imported.
OWN_MODULES_CHILD = """
import json, sys
from sigsci_iga.cli.app import main
sys.argv = ["sigsci-iga", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith("sigsci_iga"))), file=sys.stderr)
"""


def heavy_modules_after(
    *args: str, heavy: tuple[str, ...] = HEAVY, env: dict[str, str] | None = None
) -> list[str]:
    """The modules of `heavy` that `sigsci-iga ARGS` imported; it must print on stdout."""
    done = subprocess.run(  # noqa: S603  # our own interpreter, fixed code
        [sys.executable, "-c", CHILD.format(heavy=heavy), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"COLUMNS": "100", "NO_COLOR": "1", "PATH": "", **(env or {})},
    )
    assert done.stdout, f"the command printed nothing: {done.stderr}"
    listed: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return listed


@pytest.mark.parametrize("args", [("--help",), ("--version",)], ids=" ".join)
def test_top_level_help_and_version_import_no_database_http_web_or_model_module(
    args: tuple[str, ...],
) -> None:
    assert heavy_modules_after(*args, heavy=HEAVY_AT_THE_TOP) == []


@pytest.mark.parametrize(
    "args",
    [
        ("accounts", "list", "--help"),
        ("import", "--help"),
        ("sim", "serve", "--help"),
        ("serve", "--help"),
    ],
    ids=" ".join,
)
def test_a_command_s_help_imports_no_database_http_or_web_module(args: tuple[str, ...]) -> None:
    assert heavy_modules_after(*args) == []


def own_modules_after(*args: str) -> list[str]:
    """The project's modules `sigsci-iga ARGS` imported; it must print on stdout."""
    done = subprocess.run(  # noqa: S603  # our own interpreter, fixed code
        [sys.executable, "-c", OWN_MODULES_CHILD, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"COLUMNS": "100", "NO_COLOR": "1", "PATH": ""},
    )
    assert done.stdout, f"the command printed nothing: {done.stderr}"
    listed: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return listed


def test_top_level_help_imports_no_command_module() -> None:
    # Sub-commands are listed from a static table: none of their modules is imported, and
    # Typer builds none of their commands.
    assert own_modules_after("--help") == [
        "sigsci_iga",
        "sigsci_iga.cli",
        "sigsci_iga.cli.app",
        "sigsci_iga.cli.lazy",
    ]


def test_version_imports_only_the_version() -> None:
    assert [m for m in own_modules_after("--version") if m.startswith("sigsci_iga.cli.")] == [
        "sigsci_iga.cli.app",
        "sigsci_iga.cli.lazy",
        "sigsci_iga.cli.output",
    ]


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (("accounts", "list", "--help"), "sigsci_iga.cli.inventory"),
        (("sim", "serve", "--help"), "sigsci_iga.sim.cli"),
        (("restore", "--help"), "sigsci_iga.cli.provision"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else value,
)
def test_a_command_s_help_imports_its_own_command_module_and_no_other(
    args: tuple[str, ...], module: str
) -> None:
    command_modules = {entry.module for entry in cli_app.SUBCOMMANDS}
    assert command_modules & set(own_modules_after(*args)) == {module}


def fully_built_help() -> str:
    """The top-level help with every sub-command built first, as an eager Typer app prints it."""
    group = typer.main.get_command(cli_app.app)
    for _name, _command in group.commands.items():  # each lookup builds one
        pass
    with group.make_context("sigsci-iga", ["--help"], resilient_parsing=True) as ctx:
        return group.get_help(ctx)


def test_the_static_table_lists_the_same_help_as_the_built_commands() -> None:
    group = typer.main.get_command(cli_app.app)
    with group.make_context("sigsci-iga", [], resilient_parsing=True) as ctx:
        lazy_help = group.get_help(ctx)
    assert "Commands:" in lazy_help
    assert lazy_help == fully_built_help()
    for entry in cli_app.SUBCOMMANDS:
        built = group.commands[entry.name]
        for limit in (20, 45, 80, 200):
            assert built.get_short_help_str(limit) == short_help(entry, limit), entry.name


def test_a_sub_command_is_built_once_and_only_when_named() -> None:
    group = typer.main.get_command(cli_app.app)
    commands = group.commands
    assert isinstance(commands, LazyCommands)
    assert list(commands) == [entry.name for entry in cli_app.SUBCOMMANDS]
    assert all(commands.unbuilt(entry.name) is not None for entry in cli_app.SUBCOMMANDS)
    first = commands["accounts"]
    assert commands.unbuilt("accounts") is None
    assert commands.unbuilt("tokens") is not None
    assert commands["accounts"] is first
    assert "no-such-command" not in commands
    with pytest.raises(KeyError):
        _ = commands["no-such-command"]


def test_a_command_that_works_imports_what_it_needs(tmp_path: Path) -> None:
    # The guard above is only worth something if the child really reports imports.
    db = {"SIGSCI_IGA_DATABASE_URL": f"sqlite:///{tmp_path / 'iga.db'}"}
    assert "sqlalchemy" in heavy_modules_after("identities", "list", env=db)


LAZY_PACKAGES = ("sigsci_iga.app", "sigsci_iga.domain", "sigsci_iga.sim")


def type_checking_imports(package: str) -> dict[str, set[str]]:
    """What the package's `if TYPE_CHECKING:` block imports, module by module, read from source."""
    source = Path(importlib.import_module(package).__file__ or "").read_text(encoding="utf-8")
    found: dict[str, set[str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for each in node.body:
                assert isinstance(each, ast.ImportFrom)
                found.setdefault(each.module or "", set()).update(a.name for a in each.names)
    return found


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_a_lazy_package_names_the_same_homes_for_type_checkers_and_at_run_time(
    package: str,
) -> None:
    module = importlib.import_module(package)
    homes = {home: set(names) for home, names in module._HOMES.items()}
    assert homes == type_checking_imports(package)
    assert sorted(module.__all__) == sorted(module._HOME_OF)


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_name_a_lazy_package_exports_resolves_to_its_home(package: str) -> None:
    module = importlib.import_module(package)
    for name, home in module._HOME_OF.items():
        assert getattr(module, name) is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = module.no_such_name
