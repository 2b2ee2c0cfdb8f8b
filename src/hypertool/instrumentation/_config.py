"""Settings: argument > environment > ``.env`` in the working directory > default.

Read when an object is built, never at import. Each environment variable is one constant here,
and every bad value raises :class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

LANGFUSE_PUBLIC_KEY = "LANGFUSE_PUBLIC_KEY"
LANGFUSE_SECRET_KEY = "LANGFUSE_SECRET_KEY"
LANGFUSE_HOST = "LANGFUSE_HOST"
LANGFUSE_DEBUG = "LANGFUSE_DEBUG"
LANGFUSE_PROJECT_ID = "LANGFUSE_PROJECT_ID"
HYPERTOOL_EXPORT_TIMEOUT = "HYPERTOOL_EXPORT_TIMEOUT"
HYPERTOOL_EXIT_TIMEOUT = "HYPERTOOL_EXIT_TIMEOUT"
HYPERTOOL_QUEUE_SIZE = "HYPERTOOL_QUEUE_SIZE"
HYPERTOOL_MAX_FIELD_CHARS = "HYPERTOOL_MAX_FIELD_CHARS"
HYPERTOOL_CONSOLE = "HYPERTOOL_CONSOLE"
HYPERTOOL_PERSONAS_DIR = "HYPERTOOL_PERSONAS_DIR"
HYPERTOOL_PRICES = "HYPERTOOL_PRICES"
HYPERTOOL_BUDGET_PERIOD = "HYPERTOOL_BUDGET_PERIOD"
HYPERTOOL_BUDGET_POLICY = "HYPERTOOL_BUDGET_POLICY"

DEFAULT_HOST = "https://cloud.langfuse.com"
DEFAULT_EXPORT_TIMEOUT = 5.0
DEFAULT_EXIT_TIMEOUT = 2.0
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_MAX_FIELD_CHARS = 100_000

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable or argument."""


def _environment() -> dict[str, str]:
    """Environment values, with a ``.env`` in the working directory filling the gaps."""
    merged: dict[str, str] = {}
    dotenv = Path.cwd() / ".env"
    if dotenv.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    merged.update(os.environ)
    return merged


def _pick(argument: str | None, env: dict[str, str], name: str) -> str | None:
    if argument is not None and argument != "":
        return argument
    value = env.get(name, "").strip()
    return value or None


def _bool(raw: str | None, name: str, default: bool) -> bool:
    if raw is None:
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
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value


def _setting(
    argument: float | None, argument_name: str, env: dict[str, str], name: str, default: float
) -> float:
    """A positive number: the argument if given, else the variable ``name``, else default."""
    if argument is not None:
        return _positive(argument, argument_name, default)
    return _positive(env.get(name), name, default)


def _count(value: float, name: str) -> int:
    if value < 1 or value != int(value):
        raise ConfigError(f"{name}={value!r} must be a whole number of at least 1")
    return int(value)


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


def mask_secret(secret: str | None) -> str:
    """Show a secret as its first characters only, e.g. ``sk-lf-12…``."""
    if not secret:
        return "<unset>"
    return f"{secret[:8]}…"


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved settings for one :class:`LangfuseIntegration`."""

    public_key: str | None
    secret_key: str | None
    host: str
    debug: bool
    project_id: str | None
    export_timeout: float
    exit_timeout: float
    queue_size: int
    max_field_chars: int
    console: bool
    personas_dir: str | None = None
    prices_file: str | None = None
    budget_period: str = "session"
    budget_policy: str = "warn"

    @property
    def langfuse_configured(self) -> bool:
        """Both Langfuse keys are present."""
        return bool(self.public_key and self.secret_key)

    def __repr__(self) -> str:
        return (
            f"Settings(public_key={self.public_key!r}, "
            f"secret_key={mask_secret(self.secret_key)!r}, "
            f"host={self.host!r}, debug={self.debug}, export_timeout={self.export_timeout}, "
            f"exit_timeout={self.exit_timeout}, queue_size={self.queue_size})"
        )


def load_settings(
    *,
    public_key: str | None = None,
    secret_key: str | None = None,
    host: str | None = None,
    debug: bool | None = None,
    project_id: str | None = None,
    export_timeout: float | None = None,
    exit_timeout: float | None = None,
    queue_size: int | None = None,
) -> Settings:
    """Resolve settings: argument > environment > ``.env`` > default.

    Raises:
        ConfigError: a value is malformed; the message names the variable.

    """
    env = _environment()
    resolved_host = (_pick(host, env, LANGFUSE_HOST) or DEFAULT_HOST).rstrip("/")
    if not resolved_host.startswith(("http://", "https://")):
        raise ConfigError(f"{LANGFUSE_HOST}={resolved_host!r} must start with http:// or https://")
    return Settings(
        public_key=_pick(public_key, env, LANGFUSE_PUBLIC_KEY),
        secret_key=_pick(secret_key, env, LANGFUSE_SECRET_KEY),
        host=resolved_host,
        debug=debug if debug is not None else _bool(env.get(LANGFUSE_DEBUG), LANGFUSE_DEBUG, False),
        project_id=_pick(project_id, env, LANGFUSE_PROJECT_ID),
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
        budget_period=_choice(env, HYPERTOOL_BUDGET_PERIOD, ("session", "day", "month")),
        budget_policy=_choice(env, HYPERTOOL_BUDGET_POLICY, ("warn", "block")),
    )
