"""The ``splitbrain`` dispatcher: lazy sub-commands and one-line errors."""

from __future__ import annotations

import sys
import types

import pytest

from harness import cli
from harness.errors import SplitbrainError


class UnreachableSite(SplitbrainError):
    exit_code = 3


def _fake_command(monkeypatch: pytest.MonkeyPatch, behaviour) -> None:
    module = types.ModuleType("harness.cli.probe_command")
    module.HELP = "fake probe"
    module.add_arguments = lambda p: p.add_argument("--where", default="here")
    module.run = behaviour
    monkeypatch.setitem(sys.modules, "harness.cli.probe_command", module)
    monkeypatch.setattr(cli, "available_commands", lambda: ["probe"])


def test_user_error_prints_one_line_and_its_exit_code(monkeypatch, capsys):
    def run(args):
        raise UnreachableSite(f"cannot reach {args.where}\n  over ssh: check the address")

    _fake_command(monkeypatch, run)
    assert cli.main(["probe", "--where", "SWS-Store1"]) == 3
    err = capsys.readouterr().err
    assert err == "splitbrain probe: error: cannot reach SWS-Store1 over ssh: check the address\n"


def test_command_result_is_the_exit_code(monkeypatch):
    _fake_command(monkeypatch, lambda args: 0 if args.where == "here" else 4)
    assert cli.main(["probe"]) == 0
    assert cli.main(["probe", "--where", "there"]) == 4


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "usage: splitbrain" in capsys.readouterr().out




def test_every_listed_command_module_has_the_interface():
    for name in cli.available_commands():
        module = __import__(cli._module_name(name), fromlist=["run"])
        assert isinstance(module.HELP, str) and module.HELP.strip(), name
        assert callable(module.add_arguments) and callable(module.run), name
