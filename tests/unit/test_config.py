"""Start-up settings: one line per bad variable, exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_settings
from services.config import SettingsError

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:ABCdef_ghi-JKL"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(
            ("BOT_", "TELEGRAM_", "JUMDATA_", "HUAWEI_", "JDCLOUD_")
        ) or name.endswith("_PROVIDER"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's


def errors(**env: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(**env)
    return caught.value.lines


def test_token_alone_is_enough() -> None:
    settings = load_settings(bot_token=TOKEN)
    assert settings.check_provider == "local"
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.provider_timeout == 15


def test_missing_token_is_named() -> None:
    lines = errors()
    assert len(lines) == 1 and lines[0].startswith("BOT_TOKEN is missing")


def test_malformed_token_is_not_echoed() -> None:
    lines = errors(bot_token="not a token")
    assert lines[0].startswith("BOT_TOKEN is invalid") and "not a token" not in lines[0]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"check_provider": "jumdata"}, "JUMDATA_APP_ID"),
        ({"check_provider": "jumdata", "jumdata_app_id": "x"}, "JUMDATA_APP_SECRET"),
        (
            {"check_provider": "huawei", "huawei_app_key": "k", "huawei_app_secret": "s"},
            "HUAWEI_CHECK_URL",
        ),
        ({"compare_provider": "jdcloud"}, "JDCLOUD_ACCESS_KEY"),
        ({"check_provider": "tencent"}, "CHECK_PROVIDER"),
        ({"provider_timeout": "-1"}, "PROVIDER_TIMEOUT"),
        ({"admin_ids": "12,abc"}, "ADMIN_IDS"),
        ({"jumdata_url": "ftp://x"}, "JUMDATA_URL"),
        ({"default_locale": "de"}, "DEFAULT_LOCALE"),
        ({"local_landmarks": "17"}, "LOCAL_LANDMARKS"),
        ({"quota_timezone": "Mars/Olympus"}, "QUOTA_TIMEZONE"),
        ({"database_url": "mysql://x"}, "DATABASE_URL"),
        ({"default_spec": "us-pasport"}, "DEFAULT_SPEC"),
        ({"default_spec": "de-passport"}, "DEFAULT_SPEC"),  # taken at the office
        ({"webhook_url": "https://bot.example.com/hook"}, "WEBHOOK_SECRET"),
        (
            {"webhook_url": "http://bot.example.com/hook", "webhook_secret": "s3cret"},
            "WEBHOOK_URL",
        ),
        ({"metrics_listen": "9100"}, "METRICS_LISTEN"),
    ],
)
def test_bad_settings_name_their_variable(env: dict[str, str], variable: str) -> None:
    lines = errors(bot_token=TOKEN, **env)
    assert lines and lines[0].split(" ")[0] == variable


def test_webhook_mode_needs_a_secret_and_https_unless_the_api_server_is_local() -> None:
    assert errors(bot_token=TOKEN, webhook_url="http://10.0.0.5/hook") == [
        "WEBHOOK_SECRET is missing: WEBHOOK_URL (webhook mode) needs it, so that only "
        "Telegram's posts are taken as updates",
        "WEBHOOK_URL is invalid: expected an https:// URL (http only with a local Bot "
        "API server, TELEGRAM_API_LOCAL=true)",
    ]
    secure = load_settings(
        bot_token=TOKEN, webhook_url="https://bot.example.com/hook", webhook_secret="s3cret"
    )
    assert secure.webhook_problems() == []
    local = load_settings(
        bot_token=TOKEN,
        webhook_url="http://127.0.0.1:8080/hook",
        webhook_secret="s3cret",
        telegram_api_local="true",
    )
    assert local.webhook_url.startswith("http://")
    assert load_settings(bot_token=TOKEN).webhook_problems() == []  # polling


def test_metrics_listen_is_off_by_default_and_read_as_an_address() -> None:
    assert load_settings(bot_token=TOKEN).metrics_address is None
    assert load_settings(bot_token=TOKEN, metrics_listen="127.0.0.1:9100").metrics_address == (
        "127.0.0.1",
        9100,
    )


def test_admin_ids_and_locale_aliases() -> None:
    settings = load_settings(bot_token=TOKEN, admin_ids="12, 34", default_locale="zh-cn")
    assert settings.admin_ids == [12, 34]
    assert settings.default_locale == "zh_Hans"


def test_default_spec_is_kept_as_its_id() -> None:
    assert load_settings(bot_token=TOKEN, default_spec="DS-160").default_spec == "us-visa"
    assert load_settings(bot_token=TOKEN, default_spec="сша").default_spec == "us-passport"
    assert load_settings(bot_token=TOKEN).default_spec == ""


def run_module(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "SYSTEMROOT"}}
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_python_m_bot_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_module({"CHECK_PROVIDER": "jumdata", "BOT_TOKEN": TOKEN}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2  # the app id and the secret
    assert all(line.startswith("configuration error: JUMDATA_APP_") for line in lines)
    assert "Traceback" not in result.stderr


def test_missing_model_files_stop_the_bot_with_their_names(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    result = run_module({"BOT_TOKEN": TOKEN, "LOCAL_MODELS_DIR": str(empty)}, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("start-up error: local: ")
    assert f"{empty / 'face_landmark.tflite'} is missing (from mediapipe==0.10.21)" in line
    assert "python -m services.local.modelfiles fetch" in line


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOT_TOKEN=oops\n")
    result = run_module({}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "configuration error: BOT_TOKEN is invalid: expected the bot token from @BotFather, "
        "like 123456:ABC-DEF"
    )


def test_env_example_documents_every_setting_and_loads(tmp_path: Path) -> None:
    from bot.config import Settings

    example = (ROOT / ".env.example").read_text()
    documented = {
        line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")
    }
    assert documented == {name.upper() for name in Settings.model_fields}
    env_file = tmp_path / "example.env"
    env_file.write_text(example.replace("BOT_TOKEN=\n", f"BOT_TOKEN={TOKEN}\n"))
    settings = Settings(_env_file=env_file)
    assert settings.credential_problems() == []


def test_empty_token_reads_as_missing() -> None:
    assert errors(bot_token="")[0].startswith("BOT_TOKEN is missing")


def test_a_paid_provider_without_a_daily_limit_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bot.app import warn_unlimited

    paid = {
        "check_provider": "jumdata",
        "jumdata_app_id": "app",
        "jumdata_app_secret": "secret",
        "compare_provider": "jdcloud",
        "jdcloud_access_key": "ak",
        "jdcloud_secret_key": "sk",
    }
    with caplog.at_level("WARNING", logger="bot.app"):
        warn_unlimited(load_settings(bot_token=TOKEN))  # the offline engine costs nothing
        warn_unlimited(load_settings(bot_token=TOKEN, user_daily_limit="20", **paid))
        assert caplog.records == []
        warn_unlimited(load_settings(bot_token=TOKEN, **paid))
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert "USER_DAILY_LIMIT=0" in record.message and "jdcloud, jumdata" in record.message


def test_a_reservation_ttl_shorter_than_a_call_stops_start_up() -> None:
    assert errors(bot_token=TOKEN, local_timeout="60", reservation_ttl="61") == [
        "RESERVATION_TTL is invalid: expected more than 61 seconds, LOCAL_TIMEOUT (60 s, the "
        "longest the offline engine may take) and 1 s of preparing the photo"
    ]
    cloud = {"check_provider": "jumdata", "jumdata_app_id": "a", "jumdata_app_secret": "s"}
    [line] = errors(bot_token=TOKEN, reservation_ttl="47", local_timeout="30", **cloud)
    assert line.startswith("RESERVATION_TTL is invalid: expected more than 47.5 seconds")
    assert load_settings(bot_token=TOKEN, reservation_ttl="50", local_timeout="30", **cloud)
