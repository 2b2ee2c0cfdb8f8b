"""Settings: argument > environment > ``.env`` in the working directory > default.

The one owner of configuration: every environment variable the package reads is a constant
here and is read by :func:`load_settings` over one merge of the environment and ``.env``
(:func:`environment`), when an object is built, never at import. Every bad value raises
:class:`ConfigError` naming the variable (or argument).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LANGFUSE_PUBLIC_KEY = "LANGFUSE_PUBLIC_KEY"
LANGFUSE_SECRET_KEY = "LANGFUSE_SECRET_KEY"
LANGFUSE_HOST = "LANGFUSE_HOST"
LANGFUSE_DEBUG = "LANGFUSE_DEBUG"
LANGFUSE_PROJECT_ID = "LANGFUSE_PROJECT_ID"
LANGFUSE_TRACING_ENVIRONMENT = "LANGFUSE_TRACING_ENVIRONMENT"
LANGFUSE_RELEASE = "LANGFUSE_RELEASE"
HYPERTOOL_EXPORT_TIMEOUT = "HYPERTOOL_EXPORT_TIMEOUT"
HYPERTOOL_EXIT_TIMEOUT = "HYPERTOOL_EXIT_TIMEOUT"
HYPERTOOL_QUEUE_SIZE = "HYPERTOOL_QUEUE_SIZE"
HYPERTOOL_MAX_FIELD_CHARS = "HYPERTOOL_MAX_FIELD_CHARS"
HYPERTOOL_CONSOLE = "HYPERTOOL_CONSOLE"
HYPERTOOL_PERSONAS_DIR = "HYPERTOOL_PERSONAS_DIR"
HYPERTOOL_PRICES = "HYPERTOOL_PRICES"
HYPERTOOL_BUDGET_PERIOD = "HYPERTOOL_BUDGET_PERIOD"
HYPERTOOL_BUDGET_POLICY = "HYPERTOOL_BUDGET_POLICY"
HYPERTOOL_BUDGET_REFRESH_SECONDS = "HYPERTOOL_BUDGET_REFRESH_SECONDS"
HYPERTOOL_STORE = "HYPERTOOL_STORE"
HYPERTOOL_STORE_RETENTION_DAYS = "HYPERTOOL_STORE_RETENTION_DAYS"
HYPERTOOL_STORE_MAX_FIELD_CHARS = "HYPERTOOL_STORE_MAX_FIELD_CHARS"
HYPERTOOL_PROMPTS_DIR = "HYPERTOOL_PROMPTS_DIR"
HYPERTOOL_PROMPT_TIMEOUT = "HYPERTOOL_PROMPT_TIMEOUT"
OTEL_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
OTEL_TRACES_HEADERS = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
OTEL_COMPRESSION = "OTEL_EXPORTER_OTLP_COMPRESSION"
OTEL_TRACES_COMPRESSION = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"
OTEL_CERTIFICATE = "OTEL_EXPORTER_OTLP_CERTIFICATE"
OTEL_TRACES_CERTIFICATE = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"
OTEL_CLIENT_KEY = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
OTEL_TRACES_CLIENT_KEY = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"
OTEL_CLIENT_CERTIFICATE = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
OTEL_TRACES_CLIENT_CERTIFICATE = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"

DEFAULT_HOST = "https://cloud.langfuse.com"
DEFAULT_EXPORT_TIMEOUT = 5.0
DEFAULT_EXIT_TIMEOUT = 2.0
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_MAX_FIELD_CHARS = 100_000
"""Characters of a prompt or completion kept on a span (every sink)."""
DEFAULT_STORE_MAX_FIELD_CHARS = 20_000
"""Characters of a prompt or completion kept in the local store (a smaller file)."""
DEFAULT_RETENTION_DAYS = 30.0
DEFAULT_BUDGET_REFRESH_SECONDS = 1.0
"""How often, at most, a ``day``/``month`` budget re-reads what other processes spent."""
DEFAULT_PROMPT_TIMEOUT = 2.0
"""Longest ``get_prompt`` waits for Langfuse before answering from the local folder or fallback."""
STORE_OFF = "off"
MAX_RELEASE_CHARS = 200
"""Longest release kept (langfuse's SDK drops longer trace-level values)."""
_ENVIRONMENT = re.compile(r"^[a-z0-9_-]{1,40}$")
BUDGET_PERIODS = ("session", "day", "month")
BUDGET_POLICIES = ("warn", "block")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable or argument."""


def environment() -> dict[str, str]:
    """Environment values, with a ``.env`` in the working directory filling the gaps."""
    merged: dict[str, str] = {}
    dotenv = Path.cwd() / ".env"
    if dotenv.is_file():
        from dotenv import dotenv_values  # only when there is a file to read

        merged.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    merged.update(os.environ)
    return merged


_merged_environment = environment  # load_settings has an argument of the same name


def _pick(argument: str | None, env: Mapping[str, str], name: str) -> str | None:
    if argument is not None and argument != "":
        return argument
    value = env.get(name, "").strip()
    return value or None


def _bool(raw: str | None, name: str, default: bool) -> bool:
    if raw is None or not raw.strip():
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _positive(raw: str | float | None, name: str, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name}={raw!r} must be a number greater than 0")
    return value


def _setting(
    argument: float | None, argument_name: str, env: Mapping[str, str], name: str, default: float
) -> float:
    """A positive number: the argument if given, else the variable ``name``, else default."""
    if argument is not None:
        return _positive(argument, argument_name, default)
    return _positive(env.get(name, "").strip(), name, default)


def _count(value: float, name: str) -> int:
    if value < 1 or value != int(value):
        raise ConfigError(f"{name}={value!r} must be a whole number of at least 1")
    return int(value)


def _at_least(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not (math.isfinite(value) and value >= minimum):
        raise ConfigError(f"{name}={raw!r} must be a number of at least {minimum:g}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


def environment_name(raw: str | None, name: str) -> str | None:
    """A Langfuse tracing environment as Langfuse stores it (lower case), or None when unset.

    Langfuse turns any other value into ``default`` without a word
    (``PublicEnvironmentName`` in its ingestion types): here it is an error instead.

    Raises:
        ConfigError: not 1-40 of ``a-z 0-9 _ -``, or starting with the reserved ``langfuse``.

    """
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if not _ENVIRONMENT.match(value) or value.startswith("langfuse"):
        raise ConfigError(
            f"{name}={raw!r} must be 1-40 characters of a-z, 0-9, '_' and '-', not starting "
            "with 'langfuse' (e.g. production, staging)"
        )
    return value


def release_name(raw: str | None, name: str) -> str | None:
    """A release identifier (a version, a commit), or None when unset.

    Raises:
        ConfigError: longer than :data:`MAX_RELEASE_CHARS`.

    """
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if len(value) > MAX_RELEASE_CHARS:
        raise ConfigError(f"{name} is {len(value)} characters; at most {MAX_RELEASE_CHARS}")
    return value


def mask_secret(secret: str | None) -> str:
    """Show a secret as its first characters only, e.g. ``sk-lf-12…``."""
    if not secret:
        return "<unset>"
    return f"{secret[:8]}…"


def default_store_path() -> Path:
    """``traces.db`` in the per-user data directory (``platformdirs``)."""
    import platformdirs  # only when the default is needed

    return Path(platformdirs.user_data_dir("hypertool", appauthor=False)) / "traces.db"


def store_path(env: Mapping[str, str]) -> Path | None:
    """Where the store is: ``HYPERTOOL_STORE`` (made absolute now, so a later ``os.chdir``
    does not move it), or the default path; None when it is ``off``.
    """
    raw = env.get(HYPERTOOL_STORE, "").strip()
    if not raw:
        return default_store_path()
    if raw.lower() == STORE_OFF:
        return None
    return Path(os.path.abspath(Path(raw).expanduser()))


@dataclass(frozen=True, repr=False)
class OtlpSettings:
    """Where the ``otlp`` sink sends spans, from the standard ``OTEL_EXPORTER_OTLP_*``
    variables (the traces-specific ones win over the general ones).
    """

    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    compression: str | None = None
    certificate: str | None = None
    client_key: str | None = None
    client_certificate: str | None = None

    def __repr__(self) -> str:
        # Header values are credentials (``authorization=Bearer …``): names only.
        return f"OtlpSettings(endpoint={self.endpoint!r}, headers={sorted(self.headers)})"


def _otlp_headers(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    from urllib.parse import unquote

    headers: dict[str, str] = {}
    for pair in raw.split(","):
        name, sep, value = pair.partition("=")
        if sep and name.strip():
            headers[unquote(name.strip()).lower()] = unquote(value.strip())
    return headers


def otlp_settings(env: Mapping[str, str]) -> OtlpSettings | None:
    """The ``otlp`` sink's settings, or None when no endpoint variable names a collector."""
    traces = env.get(OTEL_TRACES_ENDPOINT, "").strip()
    general = env.get(OTEL_ENDPOINT, "").strip()
    if not (traces or general):
        return None
    endpoint = traces or f"{general.rstrip('/')}/v1/traces"

    def either(specific: str, generic: str) -> str | None:
        return _pick(None, env, specific) or _pick(None, env, generic)

    compression = either(OTEL_TRACES_COMPRESSION, OTEL_COMPRESSION)
    if compression is not None and compression.lower() not in ("gzip", "deflate", "none"):
        raise ConfigError(f"{OTEL_COMPRESSION}={compression!r} must be gzip, deflate or none")
    return OtlpSettings(
        endpoint=endpoint,
        headers=_otlp_headers(either(OTEL_TRACES_HEADERS, OTEL_HEADERS)),
        compression=compression.lower() if compression else None,
        certificate=either(OTEL_TRACES_CERTIFICATE, OTEL_CERTIFICATE),
        client_key=either(OTEL_TRACES_CLIENT_KEY, OTEL_CLIENT_KEY),
        client_certificate=either(OTEL_TRACES_CLIENT_CERTIFICATE, OTEL_CLIENT_CERTIFICATE),
    )


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved settings for one :class:`LangfuseIntegration` (and the CLI)."""

    public_key: str | None
    secret_key: str | None
    host: str
    debug: bool = False
    project_id: str | None = None
    environment: str | None = None
    release: str | None = None
    export_timeout: float = DEFAULT_EXPORT_TIMEOUT
    exit_timeout: float = DEFAULT_EXIT_TIMEOUT
    queue_size: int = DEFAULT_QUEUE_SIZE
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    console: bool = False
    personas_dir: str | None = None
    prices_file: str | None = None
    budget_period: str = "session"
    budget_policy: str = "warn"
    budget_period_set: bool = False
    budget_refresh_s: float = DEFAULT_BUDGET_REFRESH_SECONDS
    store_path: Path | None = None
    store_path_set: bool = False
    store_retention_days: float = DEFAULT_RETENTION_DAYS
    store_max_field_chars: int = DEFAULT_STORE_MAX_FIELD_CHARS
    otlp: OtlpSettings | None = None
    prompts_dir: str | None = None
    prompt_timeout: float = DEFAULT_PROMPT_TIMEOUT

    @property
    def langfuse_configured(self) -> bool:
        """Both Langfuse keys are present."""
        return bool(self.public_key and self.secret_key)

    def sinks(self) -> dict[str, bool]:
        """Which built-in sinks these settings turn on (the integration and ``doctor`` agree)."""
        return {
            "langfuse": self.langfuse_configured,
            "otlp": self.otlp is not None,
            "console": self.console,
            "store": self.store_path is not None,
        }

    def __repr__(self) -> str:
        return (
            f"Settings(public_key={self.public_key!r}, "
            f"secret_key={mask_secret(self.secret_key)!r}, "
            f"host={self.host!r}, debug={self.debug}, environment={self.environment!r}, "
            f"release={self.release!r}, export_timeout={self.export_timeout}, "
            f"exit_timeout={self.exit_timeout}, queue_size={self.queue_size}, "
            f"store_path={self.store_path!r}, otlp={self.otlp!r})"
        )


def load_settings(
    *,
    public_key: str | None = None,
    secret_key: str | None = None,
    host: str | None = None,
    debug: bool | None = None,
    project_id: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    export_timeout: float | None = None,
    exit_timeout: float | None = None,
    queue_size: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings: argument > environment > ``.env`` > default.

    Args:
        public_key: ``LANGFUSE_PUBLIC_KEY``.
        secret_key: ``LANGFUSE_SECRET_KEY``.
        host: ``LANGFUSE_HOST``.
        debug: ``LANGFUSE_DEBUG``.
        project_id: ``LANGFUSE_PROJECT_ID``.
        environment: ``LANGFUSE_TRACING_ENVIRONMENT``.
        release: ``LANGFUSE_RELEASE``.
        export_timeout: ``HYPERTOOL_EXPORT_TIMEOUT``.
        exit_timeout: ``HYPERTOOL_EXIT_TIMEOUT``.
        queue_size: ``HYPERTOOL_QUEUE_SIZE``.
        env: Variables to read instead of the environment merged with ``.env``.

    Raises:
        ConfigError: a value is malformed; the message names the variable.

    """
    env = _merged_environment() if env is None else env
    resolved_host = (_pick(host, env, LANGFUSE_HOST) or DEFAULT_HOST).rstrip("/")
    if not resolved_host.startswith(("http://", "https://")):
        raise ConfigError(f"{LANGFUSE_HOST}={resolved_host!r} must start with http:// or https://")
    return Settings(
        public_key=_pick(public_key, env, LANGFUSE_PUBLIC_KEY),
        secret_key=_pick(secret_key, env, LANGFUSE_SECRET_KEY),
        host=resolved_host,
        debug=debug if debug is not None else _bool(env.get(LANGFUSE_DEBUG), LANGFUSE_DEBUG, False),
        project_id=_pick(project_id, env, LANGFUSE_PROJECT_ID),
        environment=environment_name(
            _pick(environment, env, LANGFUSE_TRACING_ENVIRONMENT),
            "environment" if environment else LANGFUSE_TRACING_ENVIRONMENT,
        ),
        release=release_name(
            _pick(release, env, LANGFUSE_RELEASE), "release" if release else LANGFUSE_RELEASE
        ),
        export_timeout=_setting(
            export_timeout, "export_timeout", env, HYPERTOOL_EXPORT_TIMEOUT, DEFAULT_EXPORT_TIMEOUT
        ),
        exit_timeout=_setting(
            exit_timeout, "exit_timeout", env, HYPERTOOL_EXIT_TIMEOUT, DEFAULT_EXIT_TIMEOUT
        ),
        queue_size=_count(
            _setting(queue_size, "queue_size", env, HYPERTOOL_QUEUE_SIZE, DEFAULT_QUEUE_SIZE),
            HYPERTOOL_QUEUE_SIZE if queue_size is None else "queue_size",
        ),
        max_field_chars=_count(
            _setting(None, "", env, HYPERTOOL_MAX_FIELD_CHARS, DEFAULT_MAX_FIELD_CHARS),
            HYPERTOOL_MAX_FIELD_CHARS,
        ),
        console=_bool(env.get(HYPERTOOL_CONSOLE), HYPERTOOL_CONSOLE, False),
        personas_dir=_pick(None, env, HYPERTOOL_PERSONAS_DIR),
        prices_file=_pick(None, env, HYPERTOOL_PRICES),
        budget_period=_choice(env, HYPERTOOL_BUDGET_PERIOD, BUDGET_PERIODS),
        budget_policy=_choice(env, HYPERTOOL_BUDGET_POLICY, BUDGET_POLICIES),
        budget_period_set=bool(env.get(HYPERTOOL_BUDGET_PERIOD, "").strip()),
        budget_refresh_s=_setting(
            None, "", env, HYPERTOOL_BUDGET_REFRESH_SECONDS, DEFAULT_BUDGET_REFRESH_SECONDS
        ),
        store_path=store_path(env),
        store_path_set=bool(env.get(HYPERTOOL_STORE, "").strip()),
        store_retention_days=_at_least(
            env, HYPERTOOL_STORE_RETENTION_DAYS, DEFAULT_RETENTION_DAYS, 0
        ),
        store_max_field_chars=int(
            _at_least(env, HYPERTOOL_STORE_MAX_FIELD_CHARS, DEFAULT_STORE_MAX_FIELD_CHARS, 1)
        ),
        otlp=otlp_settings(env),
        prompts_dir=_pick(None, env, HYPERTOOL_PROMPTS_DIR),
        prompt_timeout=_setting(None, "", env, HYPERTOOL_PROMPT_TIMEOUT, DEFAULT_PROMPT_TIMEOUT),
    )
