"""The command line says what each command does and which environment variables it reads."""

import pytest

from streams.cli import main
from streams.settings import Settings


@pytest.mark.parametrize("command", ["broker", "topics", "replay", "capture", "tail", "worker", "demo", "contracts"])
def test_help_of_every_command_lists_the_environment_variables(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in Settings.model_fields:
        assert f"CARDIOWATCH_{name.upper()}" in out


def test_contracts_writes_a_json_schema_per_json_topic(tmp_path, capsys):
    assert main(["contracts", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"vitals.schema.json", "alerts.schema.json", "dlq.schema.json"}


def test_replay_without_inputs_fails_with_a_message(capsys, settings):
    import os

    os.environ["CARDIOWATCH_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
    try:
        assert main(["replay"]) == 2
    finally:
        del os.environ["CARDIOWATCH_BOOTSTRAP_SERVERS"]
    assert "nothing to replay" in capsys.readouterr().err
