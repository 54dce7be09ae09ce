"""The `etdb` command: every group and command answers --help; bad config fails cleanly."""

import pytest
import typer
from typer.testing import CliRunner

from etdb.cli import app

runner = CliRunner()


def _all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd, prefix: list[str]) -> None:
        paths.append(prefix)
        # Typer vendors its own click; any group exposes `.commands`.
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


def test_root_help_lists_groups():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("add", "cat", "get", "car", "record", "key"):
        assert group in result.output


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "etdb")
def test_every_command_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("etdb ")


def _callback_modules(cmd) -> set[str]:
    callback = getattr(cmd, "callback", None)
    found = {callback.__module__} if callback is not None else set()
    for sub in (getattr(cmd, "commands", None) or {}).values():
        found |= _callback_modules(sub)
    return found


def test_every_command_module_is_mounted():
    """Each public module of etdb/commands gives `etdb` at least one command: one left out of
    cli.py (or lost to a typo) fails here, not silently in front of a user."""
    import pkgutil

    import etdb.commands

    modules = {
        f"etdb.commands.{m.name}"
        for m in pkgutil.iter_modules(etdb.commands.__path__)
        if not m.name.startswith("_")
    }
    mounted = _callback_modules(typer.main.get_command(app))
    assert modules - mounted == set()


def test_a_missing_command_module_stops_etdb_at_start():
    """No command group is skipped for being absent: the import fails, loudly."""
    import subprocess
    import sys

    code = (
        "import sys, etdb.commands; sys.modules['etdb.commands.search'] = None\nimport etdb.cli\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, done.stderr
