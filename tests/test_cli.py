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
