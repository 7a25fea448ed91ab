"""The CLI as a user meets it: help on every command, user errors without a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nightshelf.cli_args import HELP, parser

CLI = Path(sys.executable).parent / "nightshelf"


def run(tmp_path, *args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHELF")}
    return subprocess.run([str(CLI), *args], text=True, capture_output=True,
                          env={**base, "NIGHTSHELF_HOME": str(tmp_path), **env})


def test_every_command_has_help():
    sub = next(a for a in parser()._actions if a.dest == "cmd")
    assert set(sub.choices) == set(HELP)
    for name, p in sub.choices.items():
        assert p.description == HELP[name]
        for action in p._actions:
            assert action.help, (name, action.dest)


@pytest.mark.parametrize("args, env, code, message", [
    (["night", "--ds", "2026-13-01"], {}, 2, "logical date '2026-13-01' is not YYYY-MM-DD"),
    (["where", "--ds", "2026-11-01"], {"NIGHTSHELF__SCORING__TOPN": "5"}, 3,
     "config scoring: unknown key(s) ['topn']"),
    (["land", "--ds", "2026-11-01"], {}, 3, "no landed folder"),
    (["generate"], {"NIGHTSHELF__SHOP__PROFILE": "bakery"}, 3, "unknown profile 'bakery'"),
    (["gate", "--ds", "2026-11-01"], {}, 3, "run the"),
    (["trigger", "--ds", "2026-11-01", "--conf", "{top_n: 5}"], {}, 3, "--conf is not JSON"),
    (["trigger", "--ds", "2026-11-01", "--api", "http://127.0.0.1:9", "--wait-seconds", "1"],
     {}, 3, "no recsys_nightly on an Airflow API at http://127.0.0.1:9"),
])
def test_a_user_error_says_what_is_wrong_without_a_traceback(tmp_path, args, env, code,
                                                             message):
    proc = run(tmp_path, *args, **env)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
