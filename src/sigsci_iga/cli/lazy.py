"""A root command group whose sub-commands are built when they are run, not to list them.

Typer turns every decorated function into a click command when the app starts: it reads each
signature and evaluates its string annotations, and imports every module that defines a command.
For a tree of a hundred commands that is most of the time `sigsci-iga --help` takes. Here the
root lists its sub-commands from a static table (name and one-line help) and imports and builds
one only when a command line, a completion or the reference generator asks for it by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass

import typer
import typer.main

# Typer carries its own copy of click; its commands and contexts are that copy's classes.
from typer import _click as click
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup


@dataclass(frozen=True)
class Lazy:
    """One sub-command of the root: where it lives, and what the root's help says of it."""

    name: str
    #: The module that defines it, imported when the sub-command is built.
    module: str
    #: The Typer app (a group) or the function (a single command) in that module.
    attribute: str
    #: The first paragraph of its help, as `--help` lists it (a test checks it is the real one).
    summary: str
    #: Help given at mounting, over the app's own (as `add_typer(..., help=...)`).
    help: str | None = None

    def build(self, group: TyperGroup, *, pretty_exceptions_short: bool) -> click.Command:
        """The click command Typer would have built for it inside `group`."""
        target = getattr(importlib.import_module(self.module), self.attribute)
        holder = typer.Typer()
        if isinstance(target, typer.Typer):
            if self.help is None:
                holder.add_typer(target, name=self.name)
            else:
                holder.add_typer(target, name=self.name, help=self.help)
            return typer.main.get_group_from_info(
                holder.registered_groups[0],
                pretty_exceptions_short=pretty_exceptions_short,
                suggest_commands=group.suggest_commands,
                rich_markup_mode=group.rich_markup_mode,
            )
        holder.command(self.name)(target)
        return typer.main.get_command_from_info(
            holder.registered_commands[0],
            pretty_exceptions_short=pretty_exceptions_short,
            rich_markup_mode=group.rich_markup_mode,
        )


class LazyCommands(MutableMapping[str, click.Command]):
    """The root's commands by name: those built so far, and the rest built on first lookup.

    Names iterate without building anything; a lookup (`[name]`, `get`, `items()`) builds.
    """

    def __init__(
        self,
        built: MutableMapping[str, click.Command],
        lazy: tuple[Lazy, ...],
        build: Callable[[Lazy], click.Command],
    ) -> None:
        self._built = dict(built)
        self._order = [*self._built, *(each.name for each in lazy if each.name not in built)]
        self._lazy = {each.name: each for each in lazy if each.name not in built}
        self._build = build

    def unbuilt(self, name: str) -> Lazy | None:
        """The table entry of a command not built yet, else None."""
        return self._lazy.get(name)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            entry = self._lazy.pop(name)  # KeyError for a name that is not a command
            self._built[name] = self._build(entry)
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        if name not in self._built and name not in self._lazy:
            self._order.append(name)
        self._lazy.pop(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self._built and name not in self._lazy:
            raise KeyError(name)
        self._built.pop(name, None)
        self._lazy.pop(name, None)
        self._order.remove(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._lazy


def short_help(command: Lazy | click.Command, limit: int) -> str:
    """The line `--help` lists a sub-command with, as click shortens its help to `limit`."""
    if isinstance(command, click.Command):
        return command.get_short_help_str(limit)
    # What `Command.get_short_help_str` does for a command with a help and no short help.
    return make_default_short_help(command.summary, limit).strip()


def lazy_group(table: tuple[Lazy, ...], *, pretty_exceptions_short: bool) -> type[TyperGroup]:
    """A TyperGroup class for `typer.Typer(cls=...)` that mounts `table` lazily.

    `pretty_exceptions_short` is the app's own, which Typer does not hand to the group.
    """

    class LazyGroup(TyperGroup):
        """The root group: sub-commands from `table`, each built when first looked up."""

        def __init__(self, **attrs: object) -> None:
            super().__init__(**attrs)  # type: ignore[arg-type]
            self.commands = LazyCommands(
                self.commands,
                table,
                lambda entry: entry.build(self, pretty_exceptions_short=pretty_exceptions_short),
            )

        def list_commands(self, ctx: click.Context) -> list[str]:
            return list(self.commands)

        def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            # The listing Typer prints, read from the table for commands not built yet.
            commands = self.commands
            assert isinstance(commands, LazyCommands)
            rows: list[tuple[str, Lazy | click.Command]] = []
            for name in self.list_commands(ctx):
                entry = commands.unbuilt(name)
                if entry is not None:
                    rows.append((name, entry))
                elif not commands[name].hidden:
                    rows.append((name, commands[name]))
            if not rows:
                return
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, short_help(each, limit)) for name, each in rows])

    return LazyGroup
