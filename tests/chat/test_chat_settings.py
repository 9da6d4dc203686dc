"""ChatSettings from the environment: every field settable on a replica, and a typo stops the replica."""

from __future__ import annotations

import dataclasses
import re

import pytest

from wslab import Lab
from wslab.chat.auth import issue_token
from wslab.chat.settings import ENV_PREFIX, ChatSettings, settings_from_env

SECRET = "a-secret-every-replica-shares-0123456789"


def test_an_empty_environment_gives_the_defaults_with_the_memory_backend() -> None:
    settings = settings_from_env({"PATH": "/usr/bin", "WSLAB_CHAT_SECRET": "s"})
    assert settings == ChatSettings(secret="s")
    assert settings.backend == "memory"  # F11: the default fans out only inside one process


def test_every_field_can_be_set_and_is_parsed_to_its_type() -> None:
    env = {
        "WSLAB_CHAT_SECRET": "shared",
        "WSLAB_CHAT_ALLOWED_ORIGINS": "https://chat.example, https://admin.example,",
        "WSLAB_CHAT_ALLOW_SAME_ORIGIN": "false",
        "WSLAB_CHAT_ALLOW_MISSING_ORIGIN": "no",
        "WSLAB_CHAT_AUTH_TIMEOUT": "2.5",
        "WSLAB_CHAT_TOKEN_TTL": "60",
        "WSLAB_CHAT_MAX_MESSAGE_BYTES": "100",
        "WSLAB_CHAT_RATE": "5",
        "WSLAB_CHAT_BURST": "7",
        "WSLAB_CHAT_QUEUE_SIZE": "8",
        "WSLAB_CHAT_BACKLOG_TIMEOUT": "0.75",
        "WSLAB_CHAT_HANDSHAKE_TIMEOUT": "3",
        "WSLAB_CHAT_MAX_CONNECTIONS_PER_USER": "3",
        "WSLAB_CHAT_HEARTBEAT_INTERVAL": "30",
        "WSLAB_CHAT_HEARTBEAT_TIMEOUT": "none",
        "WSLAB_CHAT_CLOSE_TIMEOUT": "1",
        "WSLAB_CHAT_BACKEND": "streams",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "WSLAB_CHAT_STREAM_MAXLEN": "10",
        "WSLAB_CHAT_REDIS_TIMEOUT": "0.5",
        "WSLAB_CHAT_PRESENCE_TTL": "12",
        "WSLAB_CHAT_DEDUP_WINDOW": "50",
    }
    settings = settings_from_env(env)
    assert settings == ChatSettings(
        secret="shared",
        allowed_origins=frozenset({"https://chat.example", "https://admin.example"}),
        allow_same_origin=False,
        allow_missing_origin=False,
        auth_timeout=2.5,
        token_ttl=60.0,
        max_message_bytes=100,
        rate=5.0,
        burst=7,
        queue_size=8,
        backlog_timeout=0.75,
        handshake_timeout=3.0,
        max_connections_per_user=3,
        heartbeat_interval=30.0,
        heartbeat_timeout=None,
        close_timeout=1.0,
        backend="streams",
        redis_url="redis://127.0.0.1:6379/0",
        stream_maxlen=10,
        redis_timeout=0.5,
        presence_ttl=12.0,
        dedup_window=50,
    )
    # the test above names every field: a new field must be added here (and so be settable)
    named = {key.removeprefix(ENV_PREFIX).lower() for key in env} | {"redis_url"}
    assert named >= {f.name for f in dataclasses.fields(ChatSettings)}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WSLAB_CHAT_RATE": "fast"}, "WSLAB_CHAT_RATE='fast': expected a finite number"),
        ({"WSLAB_CHAT_BURST": "1.5"}, "WSLAB_CHAT_BURST='1.5': expected an integer"),
        ({"WSLAB_CHAT_ALLOW_MISSING_ORIGIN": "maybe"}, "expected true or false"),
        ({"WSLAB_CHAT_RAET": "5"}, "WSLAB_CHAT_RAET: ChatSettings has no field 'raet'"),
        ({"WSLAB_CHAT_RATE": "nan"}, "WSLAB_CHAT_RATE='nan': expected a finite number"),
        ({"WSLAB_CHAT_BURST": ""}, "WSLAB_CHAT_BURST='': expected an integer"),
        ({"WSLAB_CHAT_QUEUE_SIZE": "0"}, "WSLAB_CHAT_QUEUE_SIZE: ChatSettings.queue_size must be at least 1"),
        (
            {"WSLAB_CHAT_HEARTBEAT_INTERVAL": "-1"},
            "WSLAB_CHAT_HEARTBEAT_INTERVAL: ChatSettings.heartbeat_interval must be positive",
        ),
        (
            {"WSLAB_CHAT_PRESENCE_TTL": "1", "WSLAB_CHAT_REDIS_TIMEOUT": "1"},
            "WSLAB_CHAT_PRESENCE_TTL: ChatSettings.presence_ttl (1) must be at least 3 x redis_timeout",
        ),
        (
            {"REDIS_URL": "redis://127.0.0.1:1/0", "WSLAB_CHAT_REDIS_URL": "redis://127.0.0.1:2/0"},
            "REDIS_URL and WSLAB_CHAT_REDIS_URL name different Redis servers",
        ),
    ],
)
def test_a_bad_value_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        settings_from_env(env)


@pytest.mark.anyio
async def test_a_replica_applies_its_environment_and_refuses_a_typo() -> None:
    async with Lab() as lab:
        env = {"WSLAB_CHAT_SECRET": SECRET, "WSLAB_CHAT_MAX_MESSAGE_BYTES": "400"}
        replica = await lab.serve_process(
            "wslab.chat.app:create_app_from_env", name="small", factory=True, env=env
        )
        client = await lab.connect(replica.ws_url("/ws/chat/lobby"), name="alice")
        await client.send_json({"type": "auth", "token": issue_token("alice", SECRET, 60)})
        assert (await client.recv_json(timeout=5))["type"] == "ready"
        await client.send_json({"type": "say", "text": "x" * 500})  # over the replica's 400 bytes
        assert await client.wait_closed(5) == "1009 MESSAGE_TOO_BIG 'messages are limited to 400 bytes'"
        with pytest.raises(RuntimeError, match="WSLAB_CHAT_MAX_MESAGE_BYTES"):
            await lab.serve_process(
                "wslab.chat.app:create_app_from_env",
                name="typo",
                factory=True,
                env={"WSLAB_CHAT_MAX_MESAGE_BYTES": "100"},
            )
