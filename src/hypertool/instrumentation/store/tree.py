"""One trace as a tree (``hypertool trace``, the web UI's trace page): its observations nested
under their parents, each with its scores; found by a prefix of its id, or by the Langfuse
trace id of one of its stages (the stage is then the tree).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from hypertool.instrumentation.store.observations import OBSERVATION_FIELDS, observation
from hypertool.instrumentation.store.schema import StoreError
from hypertool.instrumentation.store.scores import trace_scores, walk
from hypertool.instrumentation.store.values import iso, ms

_HEX = re.compile(r"^[0-9a-f]+$")
MIN_TRACE_PREFIX = 8


def resolve_trace_id(connection: sqlite3.Connection, trace_id: str) -> str | None:
    """The full id of the one trace whose id starts with ``trace_id`` (≥ 8 hex digits).

    Raises:
        ValueError: ``trace_id`` is not hexadecimal or too short.
        StoreError: the prefix matches more than one trace.

    """
    prefix = trace_id.strip().lower()
    if len(prefix) < MIN_TRACE_PREFIX or len(prefix) > 32 or not _HEX.match(prefix):
        raise ValueError(
            f"{trace_id!r} is not a trace id: give at least {MIN_TRACE_PREFIX} hex digits"
        )
    # A range instead of LIKE, so the primary key index answers it.
    found = [
        row[0]
        for row in connection.execute(
            "SELECT trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? LIMIT 2",
            (prefix, prefix + "g"),
        )
    ]
    if len(found) > 1:
        raise StoreError(f"trace id prefix {prefix!r} matches several traces; give more digits")
    return found[0] if found else None


def _stage(connection: sqlite3.Connection, langfuse_trace_id: str) -> tuple[str, str] | None:
    """The trace id and span id of the stage whose Langfuse trace id this is, if any.

    A stage (a span with a persona of its own) is a Langfuse trace of its own; its id is the
    workflow trace's first 16 hex digits and the stage's span id (``stage_trace_id``).
    """
    from hypertool.instrumentation.model.handles import split_stage_trace_id

    prefix, span_id = split_stage_trace_id(langfuse_trace_id)
    row = connection.execute(
        "SELECT trace_id FROM observations WHERE span_id = ?", (span_id,)
    ).fetchone()
    if row is None or not row[0].startswith(prefix):
        return None
    return row[0], span_id


def _subtree(root: dict[str, Any]) -> list[dict[str, Any]]:
    """``root`` and every node under it, parents first."""
    found, pending = [], [root]
    while pending:
        node = pending.pop()
        found.append(node)
        pending.extend(reversed(node["children"]))
    return found


def trace(connection: sqlite3.Connection, trace_id: str) -> dict[str, Any] | None:
    """One trace as a tree: its observations nested under their parents in ``children``, each
    with its ``scores``; the trace's own scores (and those of observations not stored) are the
    tree's ``scores``. None when there is no such trace.

    ``trace_id`` may also be the Langfuse trace id of a stage (what Langfuse shows for a span
    with a persona of its own): the stage is then shown, with the spans and generations inside
    it, and ``langfuse_trace_id`` says which one it is. A stage shows only its own scores:
    those of its nodes, and those given to its Langfuse trace id.

    Raises:
        ValueError: ``trace_id`` is not hexadecimal or shorter than 8 digits.
        StoreError: The prefix matches several traces.

    """
    tree = _tree(connection, trace_id)
    if tree is not None:
        _add_scores(connection, tree)
    return tree


def _add_scores(connection: sqlite3.Connection, tree: dict[str, Any]) -> None:
    by_node: dict[str, list[dict[str, Any]]] = {}
    for node in walk(tree["children"]):
        node["scores"] = by_node.setdefault(node["span_id"], [])
    tree["scores"] = []
    stage = tree["langfuse_trace_id"]
    if stage == tree["trace_id"]:
        for score in trace_scores(connection, tree["trace_id"]):
            by_node.get(score["observation_id"] or "", tree["scores"]).append(score)
        return
    # A stage (its own Langfuse trace): the workflow's other scores are not its.
    for score in trace_scores(connection, tree["trace_id"], stage):
        node_scores = by_node.get(score["observation_id"] or "")
        if node_scores is not None:
            node_scores.append(score)
        elif score["trace_id"] == stage:
            tree["scores"].append(score)


def _tree(connection: sqlite3.Connection, trace_id: str) -> dict[str, Any] | None:
    full_id = resolve_trace_id(connection, trace_id)
    stage = None
    if full_id is None and len(trace_id.strip()) == 32:
        stage = _stage(connection, trace_id.strip().lower())
        if stage is not None:
            full_id = stage[0]
    if full_id is None:
        return None
    head = connection.execute(
        "SELECT trace_id, name, persona, chatmode, workflow, start_ns, end_ns, status, error, "
        "environment, release FROM traces WHERE trace_id = ?",
        (full_id,),
    ).fetchone()
    nodes = [
        observation(row)
        for row in connection.execute(
            f"SELECT {OBSERVATION_FIELDS} FROM observations WHERE trace_id = ? "
            "ORDER BY start_ns, span_id",
            (full_id,),
        )
    ]
    by_id = {node["span_id"]: node for node in nodes}
    top: list[dict[str, Any]] = []
    for node in nodes:
        node["children"] = []
    for node in nodes:
        parent = by_id.get(node["parent_id"])
        (parent["children"] if parent is not None else top).append(node)
    langfuse_trace_id = head[0]
    if stage is not None:
        root = by_id[stage[1]]
        top, nodes = [root], _subtree(root)
        langfuse_trace_id = trace_id.strip().lower()
        head = (
            head[0], root["name"], root["persona"], root["chatmode"], root["workflow"],
            root["start_ns"], root["end_ns"], root["status"], root["error"], head[9], head[10],
        )  # fmt: skip
    generations = [node for node in nodes if node["type"] == "generation"]
    known = [node["cost_usd"] for node in generations if node["cost_usd"] is not None]
    return {
        "trace_id": head[0],
        "langfuse_trace_id": langfuse_trace_id,
        "name": head[1],
        "persona": head[2],
        "chatmode": head[3],
        "workflow": head[4],
        "environment": head[9],
        "release": head[10],
        "start": iso(head[5]),
        "start_ns": head[5],
        "end_ns": head[6],
        "duration_ms": ms(head[6] - head[5]),
        "status": head[7],
        "error": head[8],
        "observations": len(nodes),
        "generations": len(generations),
        "input_tokens": sum(node["input_tokens"] or 0 for node in generations),
        "output_tokens": sum(node["output_tokens"] or 0 for node in generations),
        "total_tokens": sum(node["total_tokens"] or 0 for node in generations),
        "cost_usd": sum(known) if known else None,
        "cost_unknown": len(generations) - len(known),
        "children": top,
    }
