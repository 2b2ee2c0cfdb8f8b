"""Multi-persona workflows: :class:`WorkflowTracer` and its stages."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.integration import (
    LangfuseIntegration,
    get_langfuse_integration,
)
from hypertool.instrumentation.metrics import PersonaMetricsCollector
from hypertool.instrumentation.model.handles import SpanContext, TraceContext
from hypertool.instrumentation.model.scores import QUALITY_GATE
from hypertool.instrumentation.personas import canonical_name

R = TypeVar("R")


class Stage:
    """One running stage; generations made inside it are its children.

    Set :attr:`passed` to False to fail the stage's quality gate without raising. When the
    stage ends, its gate becomes a BOOLEAN score named ``quality_gate`` on the stage's span,
    attributed to the stage's persona; :meth:`score` adds scores of your own.
    """

    def __init__(self, tracer: WorkflowTracer, name: str, persona: str, chatmode: str) -> None:
        self.tracer = tracer
        self.name = name
        self.persona = canonical_name(persona)
        self.chatmode = chatmode
        self.passed = True
        self.span: SpanContext | None = None
        self._start = 0.0

    def __enter__(self) -> Stage:
        self.tracer._enter_stage(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.tracer._exit_stage(self, exc)

    def score(self, name: str, value: float | bool | str, **options: Any) -> str | None:
        """Score this stage (see :meth:`LangfuseIntegration.score` for the options); None
        when the stage has not started or the score was not recorded.
        """
        if self.span is None or self.tracer.langfuse is None:
            return None
        return self.tracer.langfuse.score(self.span, name, value, **options)

    async def __aenter__(self) -> Stage:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class WorkflowTracer:
    """Trace a workflow run: ``with``/``async with`` it, then run stages inside.

    The workflow is one OpenTelemetry trace (the local store and OTLP collectors show one
    tree); each stage is a span under the workflow span. Langfuse keeps one user per trace, so
    there each stage is a trace of its own whose user is the stage's persona (named
    ``workflow/stage``, holding the stage's generations), and the workflow span is a trace of
    the workflow's persona; all of them are in one Langfuse session, the workflow's trace id
    (or ``session_id``). Switches of persona between stages, stage durations and quality gates
    go to the metrics. A failing stage records the exception, is marked ERROR, fails its
    quality gate and re-raises.

    Args:
        workflow_name: Name of the workflow (the trace name).
        metadata: Trace metadata (on every Langfuse trace of the workflow).
        langfuse: Integration to record with; the process default when None.
        metrics: Collector to feed; none when None.
        chatmode: Task mode of the workflow.
        persona: The workflow's own persona (the user of the workflow span's Langfuse trace).
        session_id: Langfuse session of the workflow's traces; the workflow's trace id when
            None.
    """

    def __init__(
        self,
        workflow_name: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        langfuse: LangfuseIntegration | None = None,
        metrics: PersonaMetricsCollector | None = None,
        chatmode: str = "",
        persona: str = "multi-persona",
        session_id: str | None = None,
    ) -> None:
        self.workflow_name = workflow_name
        self.session_id = session_id
        self.metadata = dict(metadata or {})
        self.langfuse = langfuse
        self.metrics = metrics
        self.chatmode = chatmode
        self.persona = persona
        self.trace: TraceContext | None = None
        self.previous_persona: str | None = None

    @property
    def langfuse_session_id(self) -> str | None:
        """The Langfuse session holding the workflow's traces (None before it starts)."""
        if self.trace is None:
            return None
        return self.session_id or self.trace.trace_id

    # -- the workflow ----------------------------------------------------------------------
    def __enter__(self) -> WorkflowTracer:
        integration = self.langfuse or get_langfuse_integration()
        self.langfuse = integration
        self.trace = integration.start_trace(
            self.workflow_name,
            self.persona,
            self.chatmode,
            self.metadata,
            session_id=self.session_id,
            workflow=self.workflow_name,
        )
        self.trace.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.trace is not None:
            self.trace.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> WorkflowTracer:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- stages ----------------------------------------------------------------------------
    def stage(self, stage: str, persona: str, *, chatmode: str | None = None) -> Stage:
        """A stage as a context manager (``with`` or ``async with``)."""
        return Stage(self, stage, persona, self.chatmode if chatmode is None else chatmode)

    def trace_stage(
        self, stage: str, persona: str, func: Callable[..., R], *args: Any, **kwargs: Any
    ) -> R:
        """Run ``func(*args, **kwargs)`` as a stage; for an async ``func`` this returns an
        awaitable that runs the stage when awaited.
        """
        if inspect.iscoroutinefunction(func):
            return self._trace_stage_async(stage, persona, func, args, kwargs)  # type: ignore[return-value]
        with self.stage(stage, persona):
            return func(*args, **kwargs)

    async def _trace_stage_async(
        self,
        stage: str,
        persona: str,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        with self.stage(stage, persona):
            return await func(*args, **kwargs)

    def _enter_stage(self, stage: Stage) -> None:
        if self.trace is None:
            self.__enter__()
        assert self.trace is not None and self.langfuse is not None
        if self.metrics is not None and self.previous_persona not in (None, stage.persona):
            assert self.previous_persona is not None
            self.metrics.switch_persona(self.previous_persona, stage.persona, stage.chatmode)
        self.previous_persona = stage.persona
        stage.span = self.langfuse.start_span(
            self.trace,
            stage.name,
            metadata={"workflow": self.workflow_name, "stage": stage.name},
            persona=stage.persona,
            attributes={attr.WORKFLOW: self.workflow_name, attr.STAGE: stage.name},
        )
        stage.span.__enter__()
        stage._start = time.perf_counter()

    def _exit_stage(self, stage: Stage, exc: BaseException | None) -> None:
        duration = time.perf_counter() - stage._start
        passed = stage.passed and exc is None
        if stage.span is not None:
            stage.span.__exit__(type(exc) if exc else None, exc, None)
            if self.langfuse is not None:
                reason = None
                if exc is not None:
                    reason = f"stage raised {type(exc).__name__}: {exc}"
                elif not passed:
                    reason = "stage.passed was set to False"
                self.langfuse.score(stage.span, QUALITY_GATE, passed, comment=reason)
        if self.metrics is not None:
            self.metrics.record_workflow_stage(
                self.workflow_name,
                stage.name,
                stage.persona,
                duration,
                passed=passed,
                chatmode=stage.chatmode,
            )
