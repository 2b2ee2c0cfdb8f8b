"""Scorers: functions given to ``ObservableLLM(scorers=[…])`` that turn a call's input and
output into scores of its generation.

They run on the recorder thread, after the generation is recorded, never on the caller's path.
A scorer returns one of:

- a value — ``True``/``False`` (BOOLEAN), a number (NUMERIC) or a string (CATEGORICAL) — scored
  under the scorer's name (its ``__name__``);
- a mapping ``{"value": …, "name": …, "data_type": …, "comment": …, "metadata": …}`` (only
  ``value`` is required);
- a list of such mappings (several scores);
- None (no score).

A scorer that raises, or returns something else, is reported once and skipped; the call and
its generation are never affected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hypertool.instrumentation._log import warn_once
from hypertool.instrumentation.capture.target import Target
from hypertool.instrumentation.model.handles import GenerationContext

Scorer = Callable[[Any, str], Any]
"""``scorer(input, output)``: the call's prompt (as given; lists as tuples) and its completion
text; returns a value, a mapping, a list of mappings, or None."""

_OPTIONS = ("data_type", "comment", "metadata", "config_id")


def scorer_name(scorer: Scorer) -> str:
    """The name a scorer's bare values are scored under."""
    return str(getattr(scorer, "__name__", None) or type(scorer).__name__)


def run_scorers(
    scorers: Sequence[Scorer],
    target: Target,
    generation: GenerationContext,
    prompt: Any,
    completion: str,
) -> None:
    """Score ``generation`` with each scorer (on the recorder thread)."""
    for scorer in scorers:
        try:
            result = scorer(prompt, completion)
        except Exception as exc:
            warn_once(
                f"scorer-raised-{id(scorer)}",
                "scorer %s raised %s: %s; its scores are skipped (reported once)",
                scorer_name(scorer),
                type(exc).__name__,
                exc,
            )
            continue
        for name, value, options in _scores_of(scorer, result):
            target.score(generation, name, value, **options)


def _scores_of(scorer: Scorer, result: Any) -> list[tuple[str, Any, dict[str, Any]]]:
    if result is None:
        return []
    default = scorer_name(scorer)
    items = result if isinstance(result, list | tuple) else [result]
    scores = []
    for item in items:
        if isinstance(item, Mapping):
            if "value" not in item:
                _bad(scorer, item)
                continue
            options = {key: item[key] for key in _OPTIONS if item.get(key) is not None}
            scores.append((str(item.get("name") or default), item["value"], options))
        elif isinstance(item, bool | int | float | str):
            scores.append((default, item, {}))
        else:
            _bad(scorer, item)
    return scores


def _bad(scorer: Scorer, item: Any) -> None:
    warn_once(
        f"scorer-result-{id(scorer)}",
        "scorer %s returned %r: expected a value, a mapping with 'value', a list of them, or "
        "None; skipped (reported once)",
        scorer_name(scorer),
        item,
    )
