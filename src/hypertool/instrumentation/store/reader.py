"""The questions a trace store answers — the Langfuse UI's, with no account and no network:
generations by persona, model, chatmode or workflow; traces and generations a page at a time;
one trace as a tree; scores; prompt versions and how each fares per persona; analytics over
time; each persona's budget; what a persona spent.

:class:`StoreReader` is the read side of :class:`~.trace_store.TraceStore`: each method runs
one query function of the store's query modules on the connection, with persona names made
canonical first (``Backend Engineer`` asks about ``backend-engineer``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypertool.instrumentation.store import (
    analytics,
    catalog,
    listings,
    overview,
    prompt_versions,
    quality,
    reports,
    scores,
    tree,
    usage,
)
from hypertool.instrumentation.store.connection import StoreConnection
from hypertool.instrumentation.store.filters import Filters, Status
from hypertool.instrumentation.store.listings import Order, TraceSort
from hypertool.instrumentation.store.reports import ReportBy


# Reading a store (the CLI) needs no persona model (pydantic) until a persona is named.
def _canonical(persona: str) -> str:
    from hypertool.instrumentation.personas import canonical_name

    return canonical_name(persona)


def _canonical_filters(filters: Filters) -> Filters:
    if filters.persona is None:
        return filters
    return replace(filters, persona=_canonical(filters.persona))


class StoreReader(StoreConnection):
    """The read side of a trace store (see :class:`~.trace_store.TraceStore`)."""

    def report(
        self,
        by: ReportBy = "persona",
        since_ns: int | None = None,
        *,
        filters: Filters | None = None,
    ) -> list[dict[str, Any]]:
        """Generations grouped ``by`` persona, model, chatmode or workflow (the Users view).

        Each row: ``group``, ``traces``, ``generations``, ``input_tokens``, ``output_tokens``,
        ``total_tokens``, ``cost_usd`` (sum of known costs; None when none is known),
        ``cost_unknown`` (generations without a known cost), ``errors``, ``p50_ms``, ``p95_ms``,
        ``scores`` (name → ``{"mean", "n"}`` of each numeric score given to the group's work)
        and ``gate_pass_rate`` (the mean of ``quality_gate``, None without gates). A group with
        scores and no generation has a row of its own. Input and output tokens include cached
        input and reasoning tokens.
        """
        chosen = _canonical_filters((filters or Filters()).with_defaults(since_ns=since_ns))
        return self.run(lambda c: reports.scored_report(c, by, chosen))

    def traces(
        self,
        persona: str | None = None,
        status: Status | None = None,
        since_ns: int | None = None,
        limit: int = 50,
        *,
        filters: Filters | None = None,
        sort: TraceSort = "start",
        order: Order = "desc",
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Traces, newest first (or by ``sort``: ``duration``, ``cost``; ``order`` asc/desc);
        ``persona`` matches traces it did any work in.
        """
        chosen = _canonical_filters(
            (filters or Filters()).with_defaults(persona=persona, status=status, since_ns=since_ns)
        )
        return self.run(
            lambda c: listings.traces(c, chosen, sort=sort, order=order, limit=limit, offset=offset)
        )

    def count_traces(self, filters: Filters | None = None) -> int:
        """How many traces match ``filters``."""
        chosen = _canonical_filters(filters or Filters())
        return self.run(lambda c: listings.count_traces(c, chosen))

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace as a tree (``children`` nested), or None when unknown.

        ``trace_id`` may be a prefix of at least 8 hex digits, or the Langfuse trace id of a
        workflow stage (the stage is shown). Each node has its ``scores``; the trace's own (and
        those of observations not in the store) are its ``scores``. A stage shows only its own
        scores: those of its nodes, and those given to its Langfuse trace id.

        Raises:
            ValueError: ``trace_id`` is not hexadecimal or shorter than 8 digits.
            StoreError: The prefix matches several traces.

        """
        return self.run(lambda c: tree.trace(c, trace_id))

    def generations(
        self,
        slowest: int | None = None,
        failed: bool = False,
        limit: int = 50,
        *,
        persona: str | None = None,
        since_ns: int | None = None,
        filters: Filters | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """The ``slowest`` N generations, or the most recent ``limit``; ``failed`` only."""
        chosen = _canonical_filters(
            (filters or Filters()).with_defaults(
                persona=persona, since_ns=since_ns, status="error" if failed else None
            )
        )
        count = slowest if slowest is not None else limit
        return self.run(
            lambda c: listings.generations(
                c, chosen, slowest=slowest is not None, limit=count, offset=offset
            )
        )

    def count_generations(self, filters: Filters | None = None) -> int:
        """How many generations match ``filters``."""
        chosen = _canonical_filters(filters or Filters())
        return self.run(lambda c: listings.count_generations(c, chosen))

    def scores(
        self,
        name: str | None = None,
        persona: str | None = None,
        since_ns: int | None = None,
        limit: int = 50,
        *,
        offset: int = 0,
        environment: str | None = None,
        release: str | None = None,
    ) -> list[dict[str, Any]]:
        """Scores, newest first, of ``name`` and ``persona``, of traces recorded in
        ``environment`` and ``release``, each when given; ``limit`` of them after the first
        ``offset``.
        """
        who = _canonical(persona) if persona else None
        return self.run(
            lambda c: scores.scores(
                c,
                name=name,
                persona=who,
                since_ns=since_ns,
                limit=limit,
                offset=offset,
                environment=environment,
                release=release,
            )
        )

    def count_scores(
        self,
        name: str | None = None,
        persona: str | None = None,
        since_ns: int | None = None,
        *,
        environment: str | None = None,
        release: str | None = None,
    ) -> int:
        """How many scores :meth:`scores` pages through."""
        who = _canonical(persona) if persona else None
        return self.run(
            lambda c: scores.count_scores(
                c,
                name=name,
                persona=who,
                since_ns=since_ns,
                environment=environment,
                release=release,
            )
        )

    def prompts_report(
        self,
        persona: str | None = None,
        since_ns: int | None = None,
        score: str | None = None,
        min_samples: int = quality.MIN_SAMPLES,
        *,
        prompt: str | None = None,
        environment: str | None = None,
        release: str | None = None,
    ) -> dict[str, Any]:
        """Per prompt × version × persona: generations, tokens, cost, p50/p95 latency, error
        rate, the mean of each score; and the best version per prompt and persona on
        ``score`` (see :mod:`.quality` for the rule). ``prompt``: that prompt's versions only;
        ``environment``, ``release``: generations of traces recorded there only.
        """
        who = _canonical(persona) if persona else None
        return self.run(
            lambda c: quality.prompts_report(
                c,
                persona=who,
                since_ns=since_ns,
                score=score,
                min_samples=min_samples,
                prompt=prompt,
                environment=environment,
                release=release,
            )
        )

    def prompt_version(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        """A recorded version of local prompt ``name`` (the latest when None), or None."""
        return self.run(lambda c: prompt_versions.get(c, name, version))

    def prompt_versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every recorded version of every local prompt (of prompt ``name`` only, if given)."""
        return self.run(lambda c: prompt_versions.listing(c, name))

    def analytics(
        self,
        filters: Filters | None = None,
        *,
        bucket_s: int | None = None,
        now_ns: int | None = None,
    ) -> dict[str, Any]:
        """Cost, tokens and errors per time bucket and persona, latency and time-to-first-token
        distributions (see :func:`.analytics.analytics`).
        """
        chosen = _canonical_filters(filters or Filters())
        return self.run(lambda c: analytics.analytics(c, chosen, bucket_s=bucket_s, now_ns=now_ns))

    def personas(
        self,
        budgets: overview.Budgets | None = None,
        filters: Filters | None = None,
        *,
        now_ns: int | None = None,
        only: str | None = None,
    ) -> list[dict[str, Any]]:
        """Each persona's budget this period and its activity within ``filters`` (the row of
        persona ``only``, when given).

        ``budgets`` defaults to the configured personas (see :func:`.overview.personas`).
        """
        chosen = _canonical_filters(filters or Filters())
        known = budgets if budgets is not None else overview.configured_budgets()
        name = _canonical(only) if only is not None else None
        return self.run(lambda c: overview.personas(c, known, chosen, now_ns, only=name))

    def facets(self) -> dict[str, list[Any]]:
        """The distinct personas, chatmodes, workflows, models and score names stored."""
        return self.run(catalog.facets)

    def data_version(self, trace_id: str | None = None) -> int:
        """A number that changes whenever spans or scores are stored (of ``trace_id`` only, if
        given).
        """
        return self.run(lambda c: catalog.data_version(c, trace_id))

    def usage_since(self, persona: str, since_ns: int | None = None) -> tuple[int, float]:
        """Tokens and known cost in USD of ``persona``'s generations since ``since_ns``."""
        tokens, cost, _ = self.spent_since(persona, since_ns)
        return tokens, cost

    def spent_by_others(self, persona: str, since_ns: int, writer: str) -> tuple[int, float, int]:
        """Tokens, known USD and calls of ``persona``'s generations since ``since_ns`` (a UTC
        day boundary) that ``writer`` did not store: one snapshot, so exact however busy.
        """
        name = _canonical(persona)
        return self.run(lambda c: usage.spent_by_others(c, name, since_ns, writer))

    def spent_since(self, persona: str, since_ns: int | None = None) -> tuple[int, float, int]:
        """Tokens, known cost in USD and number of ``persona``'s generations since then."""
        name = _canonical(persona)
        return self.run(lambda c: usage.spent_since(c, name, since_ns))
