"""Settings resolution: argument > environment > .env in the working directory > default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hypertool.instrumentation import ConfigError, LangfuseIntegration
from hypertool.instrumentation._config import (
    DEFAULT_EXIT_TIMEOUT,
    DEFAULT_EXPORT_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_MAX_FIELD_CHARS,
    DEFAULT_QUEUE_SIZE,
    load_settings,
    mask_secret,
)

SECRET = "sk-lf-0123456789abcdefSECRETTAIL"


def write_dotenv(values: dict[str, str]) -> Path:
    """A .env in the working directory (conftest chdirs each test to its tmp_path)."""
    path = Path.cwd() / ".env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


# -- defaults ----------------------------------------------------------------------------


def test_defaults_without_any_configuration() -> None:
    settings = load_settings()
    assert settings.public_key is None
    assert settings.secret_key is None
    assert settings.host == DEFAULT_HOST == "https://cloud.langfuse.com"
    assert settings.debug is False
    assert settings.project_id is None
    assert settings.export_timeout == DEFAULT_EXPORT_TIMEOUT
    assert settings.exit_timeout == DEFAULT_EXIT_TIMEOUT
    assert settings.queue_size == DEFAULT_QUEUE_SIZE
    assert settings.max_field_chars == DEFAULT_MAX_FIELD_CHARS
    assert settings.console is False
    assert settings.langfuse_configured is False


# -- precedence --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "argument", "attribute"),
    [
        ("LANGFUSE_PUBLIC_KEY", "public_key", "public_key"),
        ("LANGFUSE_SECRET_KEY", "secret_key", "secret_key"),
        ("LANGFUSE_HOST", "host", "host"),
    ],
)
class TestPrecedence:
    def values(self, variable: str) -> dict[str, str]:
        if variable == "LANGFUSE_HOST":
            return {
                "dotenv": "http://from-dotenv.example",
                "env": "http://from-env.example",
                "arg": "http://from-arg.example",
            }
        return {"dotenv": "from-dotenv-value", "env": "from-env-value", "arg": "from-arg-value"}

    def test_dotenv_is_used_when_nothing_else_is_set(
        self, variable: str, argument: str, attribute: str
    ) -> None:
        values = self.values(variable)
        write_dotenv({variable: values["dotenv"]})
        assert getattr(load_settings(), attribute) == values["dotenv"]

    def test_environment_beats_dotenv(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, argument: str, attribute: str
    ) -> None:
        values = self.values(variable)
        write_dotenv({variable: values["dotenv"]})
        monkeypatch.setenv(variable, values["env"])
        assert getattr(load_settings(), attribute) == values["env"]

    def test_argument_beats_environment_and_dotenv(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, argument: str, attribute: str
    ) -> None:
        values = self.values(variable)
        write_dotenv({variable: values["dotenv"]})
        monkeypatch.setenv(variable, values["env"])
        settings = load_settings(**{argument: values["arg"]})
        assert getattr(settings, attribute) == values["arg"]


def test_dotenv_is_read_from_the_working_directory_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".env").write_text("LANGFUSE_PUBLIC_KEY=pk-not-in-cwd\n")
    assert load_settings().public_key is None
    monkeypatch.chdir(elsewhere)
    assert load_settings().public_key == "pk-not-in-cwd"


def test_keys_from_dotenv_configure_langfuse() -> None:
    write_dotenv({"LANGFUSE_PUBLIC_KEY": "pk-lf-dotenv", "LANGFUSE_SECRET_KEY": SECRET})
    settings = load_settings()
    assert settings.langfuse_configured is True
    assert settings.public_key == "pk-lf-dotenv"
    assert settings.secret_key == SECRET


def test_environment_values_are_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "  pk-lf-padded  ")
    assert load_settings().public_key == "pk-lf-padded"


def test_blank_environment_value_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_HOST", "   ")
    assert load_settings().host == DEFAULT_HOST


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://localhost:3000/", "http://localhost:3000"),
        ("https://langfuse.example.com///", "https://langfuse.example.com"),
        ("https://langfuse.example.com", "https://langfuse.example.com"),
    ],
)
def test_trailing_slashes_are_stripped_from_host(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: str
) -> None:
    assert load_settings(host=raw).host == expected
    monkeypatch.setenv("LANGFUSE_HOST", raw)
    assert load_settings().host == expected


def test_project_id_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PROJECT_ID", "proj-42")
    assert load_settings().project_id == "proj-42"
    assert load_settings(project_id="proj-arg").project_id == "proj-arg"


# -- LANGFUSE_DEBUG ----------------------------------------------------------------------


def test_environment_and_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """Langfuse's own variables; Langfuse stores the environment in lower case."""
    assert (load_settings().environment, load_settings().release) == (None, None)
    monkeypatch.setenv("LANGFUSE_TRACING_ENVIRONMENT", " Production ")
    monkeypatch.setenv("LANGFUSE_RELEASE", "git-abc123")
    settings = load_settings()
    assert (settings.environment, settings.release) == ("production", "git-abc123")
    argued = load_settings(environment="staging", release="v2")
    assert (argued.environment, argued.release) == ("staging", "v2")
    integration = LangfuseIntegration(environment="qa_1", release="r")
    try:
        assert (integration.settings.environment, integration.settings.release) == ("qa_1", "r")
    finally:
        integration.shutdown(0)


@pytest.mark.parametrize("bad", ["langfuse-prod", "prod env", "x" * 41, "préprod"])
def test_an_environment_langfuse_would_replace_is_an_error(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    """Langfuse silently turns these into ``default``: here they fail at start-up."""
    monkeypatch.setenv("LANGFUSE_TRACING_ENVIRONMENT", bad)
    with pytest.raises(ConfigError, match="LANGFUSE_TRACING_ENVIRONMENT"):
        load_settings()
    monkeypatch.delenv("LANGFUSE_TRACING_ENVIRONMENT")
    with pytest.raises(ConfigError, match="environment="):
        load_settings(environment=bad)


def test_a_release_too_long_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_RELEASE", "r" * 201)
    with pytest.raises(ConfigError, match="LANGFUSE_RELEASE"):
        load_settings()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" Yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_langfuse_debug_parsing(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("LANGFUSE_DEBUG", raw)
    assert load_settings().debug is expected


def test_debug_argument_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_DEBUG", "true")
    assert load_settings(debug=False).debug is False
    monkeypatch.setenv("LANGFUSE_DEBUG", "false")
    assert load_settings(debug=True).debug is True


def test_debug_from_dotenv() -> None:
    write_dotenv({"LANGFUSE_DEBUG": "yes"})
    assert load_settings().debug is True


# -- HYPERTOOL_* numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "attribute", "raw", "expected"),
    [
        ("HYPERTOOL_EXPORT_TIMEOUT", "export_timeout", "2.5", 2.5),
        ("HYPERTOOL_EXIT_TIMEOUT", "exit_timeout", "0.25", 0.25),
        ("HYPERTOOL_QUEUE_SIZE", "queue_size", "123", 123),
        ("HYPERTOOL_MAX_FIELD_CHARS", "max_field_chars", "4096", 4096),
        ("HYPERTOOL_BUDGET_REFRESH_SECONDS", "budget_refresh_s", "0.5", 0.5),
        ("HYPERTOOL_PROMPT_TIMEOUT", "prompt_timeout", "0.75", 0.75),
    ],
)
def test_numeric_variables_from_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str, attribute: str, raw: str, expected: float
) -> None:
    monkeypatch.setenv(variable, raw)
    value = getattr(load_settings(), attribute)
    assert value == expected
    assert type(value) is type(expected)


def test_numeric_variables_from_dotenv() -> None:
    write_dotenv({"HYPERTOOL_QUEUE_SIZE": "77", "HYPERTOOL_EXPORT_TIMEOUT": "1.5"})
    settings = load_settings()
    assert settings.queue_size == 77
    assert settings.export_timeout == 1.5


def test_numeric_arguments_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERTOOL_QUEUE_SIZE", "50")
    monkeypatch.setenv("HYPERTOOL_EXPORT_TIMEOUT", "9")
    monkeypatch.setenv("HYPERTOOL_EXIT_TIMEOUT", "8")
    settings = load_settings(queue_size=7, export_timeout=1.25, exit_timeout=0.5)
    assert settings.queue_size == 7
    assert settings.export_timeout == 1.25
    assert settings.exit_timeout == 0.5


def test_prompt_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (load_settings().prompts_dir, load_settings().prompt_timeout) == (None, 2.0)
    monkeypatch.setenv("HYPERTOOL_PROMPTS_DIR", " ~/prompts ")
    assert load_settings().prompts_dir == "~/prompts"


def test_console_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERTOOL_CONSOLE", "on")
    assert load_settings().console is True


# -- errors name the variable ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("HYPERTOOL_QUEUE_SIZE", "abc"),
        ("HYPERTOOL_QUEUE_SIZE", "0"),
        ("HYPERTOOL_QUEUE_SIZE", "-5"),
        ("HYPERTOOL_EXPORT_TIMEOUT", "soon"),
        ("HYPERTOOL_EXPORT_TIMEOUT", "-1"),
        ("HYPERTOOL_EXIT_TIMEOUT", "nan"),
        ("HYPERTOOL_MAX_FIELD_CHARS", "lots"),
        ("HYPERTOOL_BUDGET_REFRESH_SECONDS", "0"),
        ("HYPERTOOL_BUDGET_REFRESH_SECONDS", "often"),
        ("HYPERTOOL_PROMPT_TIMEOUT", "0"),
        ("HYPERTOOL_PROMPT_TIMEOUT", "forever"),
        ("LANGFUSE_HOST", "ftp://x"),
        ("LANGFUSE_HOST", "langfuse.example.com"),
        ("LANGFUSE_DEBUG", "maybe"),
        ("HYPERTOOL_CONSOLE", "sometimes"),
    ],
)
def test_bad_environment_value_raises_config_error_naming_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert variable in str(info.value)
    assert raw in str(info.value)
    # the integration surfaces the same error instead of starting half-configured
    with pytest.raises(ConfigError, match=variable):
        LangfuseIntegration()


def test_bad_value_in_dotenv_names_the_variable() -> None:
    write_dotenv({"HYPERTOOL_QUEUE_SIZE": "abc"})
    with pytest.raises(ConfigError, match="HYPERTOOL_QUEUE_SIZE"):
        load_settings()


def test_bad_host_argument_names_langfuse_host() -> None:
    with pytest.raises(ConfigError, match="LANGFUSE_HOST"):
        load_settings(host="ftp://x")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("variable", ["HYPERTOOL_QUEUE_SIZE", "HYPERTOOL_MAX_FIELD_CHARS"])
def test_fractional_count_below_one_is_rejected(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # A queue of 0 spans (or fields capped at 0 chars) is as unusable as "0", which is rejected.
    monkeypatch.setenv(variable, "0.5")
    try:
        settings = load_settings()
    except ConfigError as exc:
        assert variable in str(exc)
    else:
        attribute = "queue_size" if variable == "HYPERTOOL_QUEUE_SIZE" else "max_field_chars"
        assert getattr(settings, attribute) >= 1, f"{variable}=0.5 resolved to 0"


@pytest.mark.parametrize(
    ("argument", "value"),
    [("export_timeout", -1.0), ("exit_timeout", -2.0)],
)
def test_negative_timeout_argument_is_rejected(argument: str, value: float) -> None:
    # The environment variable is validated as "greater than 0"; the argument must be too.
    with pytest.raises(ConfigError):
        load_settings(**{argument: value})


# -- secrets never shown in full -------------------------------------------------------------


def test_mask_secret_shows_first_eight_characters_only() -> None:
    masked = mask_secret(SECRET)
    assert masked.startswith(SECRET[:8])
    assert SECRET[8:] not in masked
    assert mask_secret(None) == mask_secret("") == "<unset>"


def test_settings_repr_masks_secret_key() -> None:
    settings = load_settings(public_key="pk-lf-public", secret_key=SECRET)
    text = repr(settings)
    assert SECRET not in text
    assert SECRET[8:] not in text
    assert SECRET[:8] in text
    assert "pk-lf-public" in text


def test_settings_repr_masks_secret_key_from_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
    text = repr(load_settings())
    assert SECRET not in text
    assert SECRET[:8] in text


def test_integration_repr_masks_secret_key() -> None:
    integration = LangfuseIntegration(
        public_key="pk-lf-public", secret_key=SECRET, host="http://127.0.0.1:9"
    )
    try:
        text = repr(integration)
        assert SECRET not in text
        assert SECRET[8:] not in text
        assert SECRET[:8] in text
        assert "http://127.0.0.1:9" in text
        assert SECRET not in repr(integration.settings)
    finally:
        integration.shutdown(0)


# -- one owner: the integration and `hypertool doctor` read the same settings ----------------
@pytest.mark.parametrize("where", ["environment", "dotenv"])
def test_doctor_and_integration_agree_on_the_sinks(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    from hypertool.instrumentation.cli.doctor import diagnose

    values = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "HYPERTOOL_STORE": str(tmp_path / "store.db"),
        "HYPERTOOL_CONSOLE": "true",
    }
    monkeypatch.delenv("HYPERTOOL_STORE")
    if where == "dotenv":
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    else:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
    integration = make()
    settings = load_settings()
    report = diagnose(settings.store_path, "test", online=False, settings=settings)
    doctor_on = {name for name, sink in report["sinks"].items() if sink["enabled"]}
    assert doctor_on == set(integration.sinks) == {"otlp", "store", "console"}
    assert report["sinks"]["otlp"]["endpoint"] == "http://127.0.0.1:4318/v1/traces"
    assert integration.settings.otlp == settings.otlp
    assert report["sinks"]["store"]["path"] == str(tmp_path / "store.db")


def test_otlp_settings_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20secret-token,x-a=b")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    otlp = load_settings().otlp
    assert otlp is not None
    assert otlp.endpoint == "http://traces:4318/v1/traces"
    assert otlp.headers == {"authorization": "Bearer secret-token", "x-a": "b"}
    assert otlp.compression == "gzip"
    assert "secret-token" not in repr(otlp) and "secret-token" not in repr(load_settings())


def test_bad_otlp_compression_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_COMPRESSION"):
        load_settings()


def test_a_relative_store_path_is_fixed_when_settings_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERTOOL_STORE", "rel/traces.db")
    first = load_settings().store_path
    monkeypatch.chdir(tmp_path.parent)
    assert first == tmp_path / "rel" / "traces.db"
    assert load_settings().store_path == tmp_path.parent / "rel" / "traces.db"
