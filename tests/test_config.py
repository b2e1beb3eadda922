import pytest

from atomic import config
from atomic.errors import ConfigError


def test_defaults_match_the_contract():
    s = config.load(env={})
    assert (s.host, s.http_port, s.ws_port, s.threads) == ("127.0.0.1", 8080, None, 4)
    assert (s.ipc_pool_size, s.sandbox_image, s.memory_limit_mb) == (4, "atomic-sandbox:latest", 512)
    assert (s.max_queue_size, s.max_concurrent, s.log_level, s.cors_origins) == (1000, 10, "INFO", ("*",))
    assert s.api_keys == ()


def test_environment_overrides_file_and_flags_override_both(tmp_path):
    f = tmp_path / "atomic.toml"
    f.write_text('http_port = 9000\nthreads = 3\natomic_log_level = "debug"\n')
    s = config.load(env={"ATOMIC_HTTP_PORT": "9100"}, config_file=f)
    assert (s.http_port, s.threads, s.log_level) == (9100, 3, "DEBUG")
    s = config.load(env={"ATOMIC_HTTP_PORT": "9100"}, config_file=f, overrides={"http_port": "9200"})
    assert s.http_port == 9200


def test_lists_are_comma_separated():
    s = config.load(env={"ATOMIC_API_KEYS": "a, b,,c", "ATOMIC_CORS_ORIGINS": "https://x.test"})
    assert s.api_keys == ("a", "b", "c")
    assert s.cors_origins == ("https://x.test",)
    assert s.public()["api_keys"] == ["***"] * 3


def test_every_bad_value_is_reported_on_its_own_line():
    with pytest.raises(ConfigError) as info:
        config.load(env={"ATOMIC_HTTP_PORT": "eighty", "ATOMIC_THREADS": "0", "ATOMIC_LOG_LEVEL": "LOUD"})
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert any(line.startswith("ATOMIC_HTTP_PORT='eighty': expected a port number") for line in lines)
    assert any(line.startswith("ATOMIC_THREADS='0': expected a whole number above 0") for line in lines)
    assert any("ATOMIC_LOG_LEVEL='LOUD': expected one of DEBUG" in line for line in lines)


def test_cross_checks_and_unknown_file_keys(tmp_path):
    with pytest.raises(ConfigError, match="ATOMIC_DEFAULT_MEMORY_MB=1024: expected at most"):
        config.load(env={"ATOMIC_DEFAULT_MEMORY_MB": "1024"})
    f = tmp_path / "bad.toml"
    f.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match=r"colour .*unknown setting"):
        config.load(env={}, config_file=f)
    with pytest.raises(ConfigError, match="no such file"):
        config.load(env={}, config_file=tmp_path / "missing.toml")


def test_cli_prints_one_line_per_bad_value(capsys, monkeypatch):
    from atomic.cli import main

    monkeypatch.setenv("ATOMIC_MAX_CONCURRENT", "-1")
    assert main(["config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["atomic: configuration: ATOMIC_MAX_CONCURRENT='-1': expected a whole number above 0"]


def test_reference_covers_every_setting():
    names = {row[0] for row in config.reference()}
    for var in ("ATOMIC_HOST", "ATOMIC_HTTP_PORT", "ATOMIC_WS_PORT", "ATOMIC_THREADS", "ATOMIC_IPC_SOCKET",
                "ATOMIC_IPC_POOL_SIZE", "ATOMIC_SANDBOX_IMAGE", "ATOMIC_MEMORY_LIMIT_MB",
                "ATOMIC_MAX_QUEUE_SIZE", "ATOMIC_MAX_CONCURRENT", "ATOMIC_LOG_LEVEL",
                "ATOMIC_CORS_ORIGINS", "ATOMIC_API_KEYS", "ATOMIC_DATA_DIR"):
        assert var in names
