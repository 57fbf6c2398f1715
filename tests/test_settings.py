"""Settings (chat/settings.py): CHAT_* variables, their defaults, and the secret key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from chat.settings import (
    DEFAULT_INSTANCE,
    Rate,
    SettingsError,
    load_settings,
    resolve_secret_key,
)


def test_defaults_when_nothing_is_set():
    settings = load_settings({})
    assert settings.database_url == ""
    assert settings.sqlite_path == DEFAULT_INSTANCE / "chat.db"
    assert settings.secret_key == ""
    assert settings.code_length == 4
    assert settings.room_capacity == 100
    assert settings.empty_room_ttl == 900
    assert settings.leave_grace == 5
    assert settings.page_size == 50
    assert settings.message_max == 2000
    assert settings.send_queue == 256
    assert settings.message_rate == Rate(30, 10)
    assert settings.join_fail_rate == Rate(10, 60)
    assert settings.create_rate == Rate(10, 60)
    assert settings.broker_url == ""
    assert settings.sockets_per_user == 10
    assert settings.sockets_per_address == 200
    assert settings.proxy_hops == 0
    assert settings.ws_compression == "off"


def test_blank_values_mean_the_default():
    assert load_settings({"CHAT_CODE_LENGTH": "  ", "CHAT_MESSAGE_RATE": ""}) == load_settings({})


def test_every_variable_is_read():
    settings = load_settings(
        {
            "CHAT_DATABASE_URL": "sqlite:////srv/chat/data.db",
            "CHAT_SECRET_KEY": " s3cret ",
            "CHAT_CODE_LENGTH": "6",
            "CHAT_ROOM_CAPACITY": "3",
            "CHAT_EMPTY_ROOM_TTL": "0",
            "CHAT_LEAVE_GRACE": "0.5",
            "CHAT_PAGE_SIZE": "20",
            "CHAT_MESSAGE_MAX": "500",
            "CHAT_SEND_QUEUE": "8",
            "CHAT_MESSAGE_RATE": "5/2",
            "CHAT_JOIN_FAIL_RATE": "3/30",
            "CHAT_CREATE_RATE": "2/60",
            "CHAT_BROKER_URL": "redis://cache:6379/0",
            "CHAT_SOCKETS_PER_USER": "3",
            "CHAT_SOCKETS_PER_ADDRESS": "50",
            "CHAT_PROXY_HOPS": "2",
            "CHAT_WS_COMPRESSION": "Small",
        }
    )
    assert settings.database_url == "sqlite:////srv/chat/data.db"
    assert settings.sqlite_path == Path("/srv/chat/data.db")
    assert settings.secret_key == "s3cret"
    assert settings.code_length == 6
    assert settings.room_capacity == 3
    assert settings.empty_room_ttl == 0
    assert settings.leave_grace == 0.5
    assert settings.page_size == 20
    assert settings.message_max == 500
    assert settings.send_queue == 8
    assert settings.message_rate == Rate(5, 2)
    assert settings.join_fail_rate == Rate(3, 30)
    assert settings.create_rate == Rate(2, 60)
    assert settings.broker_url == "redis://cache:6379/0"
    assert settings.sockets_per_user == 3
    assert settings.sockets_per_address == 50
    assert settings.proxy_hops == 2
    assert settings.ws_compression == "small"


def test_relative_sqlite_url_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"CHAT_DATABASE_URL": "sqlite:///data/chat.db"})
    assert settings.sqlite_path == tmp_path / "data" / "chat.db"


def test_postgresql_url_is_accepted_but_is_not_sqlite():
    settings = load_settings({"CHAT_DATABASE_URL": "postgresql://db/chat"})
    assert settings.sqlite_path is None


RATES = ["CHAT_MESSAGE_RATE", "CHAT_JOIN_FAIL_RATE", "CHAT_CREATE_RATE"]


@pytest.mark.parametrize("variable", RATES)
@pytest.mark.parametrize("value", ["off", "OFF", " Off "])
def test_off_disables_a_rate(variable, value):
    field = variable.removeprefix("CHAT_").lower()
    assert getattr(load_settings({variable: value}), field) is None


@pytest.mark.parametrize("value", ["off", " OFF "])
def test_off_disables_the_socket_limit_per_address(value):
    assert load_settings({"CHAT_SOCKETS_PER_ADDRESS": value}).sockets_per_address is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHAT_CODE_LENGTH", "abc"),
        ("CHAT_CODE_LENGTH", "2"),
        ("CHAT_CODE_LENGTH", "4.5"),
        ("CHAT_ROOM_CAPACITY", "0"),
        ("CHAT_EMPTY_ROOM_TTL", "-1"),
        ("CHAT_EMPTY_ROOM_TTL", "soon"),
        ("CHAT_EMPTY_ROOM_TTL", "nan"),
        ("CHAT_EMPTY_ROOM_TTL", "inf"),
        ("CHAT_LEAVE_GRACE", "-0.5"),
        ("CHAT_PAGE_SIZE", "0"),
        ("CHAT_MESSAGE_MAX", "-3"),
        ("CHAT_SEND_QUEUE", "many"),
        ("CHAT_MESSAGE_RATE", "30"),
        ("CHAT_MESSAGE_RATE", "0/10"),
        ("CHAT_MESSAGE_RATE", "30/0"),
        ("CHAT_JOIN_FAIL_RATE", "ten/60"),
        ("CHAT_CREATE_RATE", "10/-60"),
        ("CHAT_DATABASE_URL", "mysql://x"),
        ("CHAT_DATABASE_URL", "chat.db"),
        ("CHAT_BROKER_URL", "amqp://rabbit"),
        ("CHAT_SOCKETS_PER_USER", "0"),
        ("CHAT_SOCKETS_PER_USER", "off"),
        ("CHAT_SOCKETS_PER_USER", "ten"),
        ("CHAT_SOCKETS_PER_ADDRESS", "0"),
        ("CHAT_SOCKETS_PER_ADDRESS", "-5"),
        ("CHAT_SOCKETS_PER_ADDRESS", "lots"),
        ("CHAT_PROXY_HOPS", "-1"),
        ("CHAT_PROXY_HOPS", "one"),
        ("CHAT_PROXY_HOPS", "1.5"),
        ("CHAT_WS_COMPRESSION", "gzip"),
    ],
)
def test_bad_value_is_refused_naming_the_variable(variable, value):
    with pytest.raises(SettingsError) as error:
        load_settings({variable: value})
    assert variable in str(error.value)


def test_overrides_replace_what_the_environment_says():
    settings = load_settings({"CHAT_PAGE_SIZE": "20"}, page_size=7, leave_grace=0.0)
    assert settings.page_size == 7
    assert settings.leave_grace == 0


# Secret key -------------------------------------------------------------------


def test_secret_key_is_generated_once_beside_the_database(tmp_path):
    settings = load_settings({"CHAT_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'chat.db'}"})
    key = resolve_secret_key(settings)
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert key_file.read_text().strip() == key
    assert resolve_secret_key(settings) == key
    assert [path.name for path in key_file.parent.iterdir()] == ["secret_key"]  # no drafts left


def test_each_data_folder_gets_its_own_key(tmp_path):
    first = load_settings({"CHAT_DATABASE_URL": f"sqlite:///{tmp_path / 'a' / 'chat.db'}"})
    second = load_settings({"CHAT_DATABASE_URL": f"sqlite:///{tmp_path / 'b' / 'chat.db'}"})
    assert resolve_secret_key(first) != resolve_secret_key(second)


def test_configured_secret_key_wins_and_writes_no_file(tmp_path):
    settings = load_settings(
        {"CHAT_DATABASE_URL": f"sqlite:///{tmp_path / 'chat.db'}", "CHAT_SECRET_KEY": "given-key"}
    )
    assert resolve_secret_key(settings) == "given-key"
    assert not (tmp_path / "secret_key").exists()


def test_key_goes_to_the_instance_folder_for_a_non_sqlite_store(tmp_path):
    settings = load_settings(
        {"CHAT_DATABASE_URL": "postgresql://db/chat"}, instance_path=tmp_path / "instance"
    )
    key = resolve_secret_key(settings)
    assert (tmp_path / "instance" / "secret_key").read_text().strip() == key
