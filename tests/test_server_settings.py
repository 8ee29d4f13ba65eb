"""Settings: defaults, PIPELINES_* environment variables, and flags that beat them."""

from __future__ import annotations

import pytest

from server.__main__ import settings_from_args
from server.settings import Settings


def test_defaults() -> None:
    s = Settings()
    assert (s.host, s.port) == ("0.0.0.0", 8080)
    assert s.token is None and s.test_coroutines is False and s.demo_sleep_scale == 1.0


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINES_MAX_NODES", "12")
    monkeypatch.setenv("PIPELINES_PORT", "9001")
    monkeypatch.setenv("PIPELINES_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("PIPELINES_TOKEN", "s3cret")
    s = settings_from_args(["--port", "9002", "--no-allow-localhost-origins",
                            "--test-coroutines"])
    assert s.max_nodes == 12 and s.port == 9002
    assert s.allowed_origins == ["https://a.example", "https://b.example"]
    assert s.allow_localhost_origins is False and s.test_coroutines is True
    assert s.token is not None and s.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.spec_limits().max_nodes == 12


def test_bad_flag_value_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        settings_from_args(["--max-nodes", "0"])
    assert exc.value.code == 2
    assert "--max-nodes" in capsys.readouterr().err
