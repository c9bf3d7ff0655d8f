"""The Redis cache fails open: while Redis is unreachable the site serves without throttle counters."""

import socket

import pytest
from django.core.cache.backends.redis import RedisCache

from deepmed.cache import ResilientRedisCache


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: nothing listens there


@pytest.fixture
def unreachable():
    return ResilientRedisCache(f"redis://127.0.0.1:{closed_port()}/1", {})


def test_reads_miss_and_writes_are_skipped_while_redis_is_unreachable(unreachable, caplog):
    assert unreachable.get("throttle_user_1", []) == []
    assert unreachable.get_many(["a", "b"]) == {}
    assert unreachable.has_key("a") is False
    unreachable.set("a", 1, 60)
    assert unreachable.delete("a") is False
    assert "cache unavailable" in caplog.text


def test_a_rate_limit_counter_starts_afresh_instead_of_failing(unreachable):
    # django-ratelimit: add() says "new key", incr() says "no such key"; both mean "not limited".
    assert unreachable.add("rl:login:127.0.0.1", 1, 60) is True
    with pytest.raises(ValueError):
        unreachable.incr("rl:login:127.0.0.1")


def test_the_plain_redis_cache_would_raise_which_is_why_the_settings_swap_it(settings):
    from redis.exceptions import ConnectionError as RedisConnectionError

    with pytest.raises(RedisConnectionError):
        RedisCache(f"redis://127.0.0.1:{closed_port()}/1", {}).get("a")


def test_the_settings_use_it_for_a_redis_cache_url(tmp_path):
    import json
    import os
    import subprocess
    import sys

    probe = "import json; from deepmed import settings as s; print(json.dumps(s.CACHES['default']))"
    env = {"PATH": os.environ["PATH"], "VAR_DIR": str(tmp_path), "DEBUG": "1", "CACHE_URL": "redis://127.0.0.1:6390/1"}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)  # noqa: S603
    assert json.loads(result.stdout)["BACKEND"] == "deepmed.cache.ResilientRedisCache"
