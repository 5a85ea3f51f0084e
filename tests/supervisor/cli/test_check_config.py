"""``intentd check-config`` checks the channel settings as the daemon's start does."""

from pathlib import Path

import pytest

from supervisor.cli.main import main


@pytest.mark.parametrize(
    ("channels", "slack", "code"),
    [
        ("{default: ops}", "{enabled: false}", 2),
        ("{admin: 'slack:#ops'}", "{enabled: false}", 2),
        ("{default: ops, admin: 'slack:#ops'}", "{enabled: true, bot_token: x, app_token: y}", 0),
    ],
)
def test_check_config_resolves_the_channel_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], channels: str, slack: str, code: int
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"channels: {channels}\nslack: {slack}\n")
    assert main(["check-config", str(path)]) == code
    err = capsys.readouterr().err
    assert ("which names no channel" in err) == (code == 2)


def test_check_config_warns_of_settings_for_a_role_that_has_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "roles").mkdir()
    (tmp_path / "roles" / "deploys.py").write_text("")
    path = tmp_path / "config.yaml"
    path.write_text(
        "roles:\n  settings:\n    deploy: {channel: ops}\n    deploys: {channel: ops}\n"
        "    zzz: {}\n"
    )
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: warning: roles.settings.deploy names no role file (deploy.py is not in "
        "roles/), so no role reads it; did you mean 'deploys'?",
        f"{path}: warning: roles.settings.zzz names no role file (zzz.py is not in roles/), so "
        "no role reads it; rename the key to a role's name",
        f"{path}: ok",
    ]
