"""Compatibility path: workflows now live in :mod:`hypertool.instrumentation.workflow`."""

from hypertool.instrumentation.workflow import Stage, WorkflowTracer

__all__ = ["Stage", "WorkflowTracer"]
