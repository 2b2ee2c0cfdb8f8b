"""One trace as a ``rich`` tree: its spans and generations with prompts, completions, errors
and scores (``hypertool trace``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from rich.tree import Tree

from hypertool.instrumentation.cli import output as out
from hypertool.instrumentation.display import NONE, cost, duration, excerpt, moment, tokens


def _usage(node: Mapping[str, Any]) -> str:
    text = (
        f"{tokens(node['input_tokens'])} in + {tokens(node['output_tokens'])} out = "
        f"{tokens(node['total_tokens'])} tokens"
    )
    return text + (" (estimated)" if node.get("usage_estimated") else "")


def _node_label(node: Mapping[str, Any]) -> Text:
    label = Text()
    label.append(f"[{node['type']}] ", style="magenta" if node["type"] == "generation" else "blue")
    label.append(str(node["name"]), style="bold")
    parts = [node["persona"] or NONE]
    if node["stage"]:
        parts.append(f"stage {node['stage']}")
    if node["type"] == "generation":
        parts += [
            node["model"] or NONE,
            _usage(node),
            cost(node["cost_usd"], 1 if node["cost_usd"] is None else 0),
        ]
    if node.get("prompt_name"):
        parts.append(f"prompt {node['prompt_name']} v{node['prompt_version']}")
    parts.append(duration(node["latency_ms"]))
    label.append("  " + " · ".join(parts))
    if node["status"] == "error":
        label.append("  ✗ error", style="bold red")
    return label


def _add_nodes(tree: Tree, nodes: Sequence[Mapping[str, Any]]) -> None:
    for node in nodes:
        branch = tree.add(_node_label(node))
        if node["type"] == "generation":
            branch.add(Text.assemble(("prompt: ", "bold dim"), excerpt(node["input"]) or NONE))
            branch.add(Text.assemble(("completion: ", "bold dim"), excerpt(node["output"]) or NONE))
        if node["error"]:
            branch.add(Text.assemble(("error: ", "bold red"), excerpt(node["error"])))
        _add_scores(branch, node.get("scores") or ())
        _add_nodes(branch, node["children"])


def _add_scores(tree: Tree, scores: Sequence[Mapping[str, Any]]) -> None:
    for score in scores:
        value = score["value"]
        shown = ("true" if value else "false") if score["data_type"] == "BOOLEAN" else str(value)
        line = Text.assemble(("score ", "bold yellow"), f"{score['name']} = {shown}")
        if score.get("comment"):
            line.append(f"  ({excerpt(score['comment'], 80)})", style="dim")
        tree.add(line)


def trace_tree(trace: Mapping[str, Any]) -> Tree:
    """One trace as a tree of its spans and generations, with prompts and completions."""
    label = Text()
    label.append("Trace ", style="bold")
    label.append(trace["trace_id"], style="cyan")
    label.append(f"  {trace['name'] or NONE}  ", style="bold")
    label.append_text(out.status_cell(trace["status"]))
    langfuse_id = trace.get("langfuse_trace_id")
    if langfuse_id and langfuse_id != trace["trace_id"]:
        label.append("\nstage with Langfuse trace ", style="dim")
        label.append(langfuse_id, style="cyan")
    deployment = [
        f"{key} {trace[key]}" for key in ("environment", "release") if trace.get(key) is not None
    ]
    label.append(
        "\n"
        + " · ".join(
            [
                trace["persona"] or NONE,
                trace["chatmode"] or NONE,
                *deployment,
                moment(trace["start_ns"]),
                duration(trace["duration_ms"]),
                f"{trace['generations']} generation(s)",
                f"{tokens(trace['total_tokens'])} tokens",
                cost(trace["cost_usd"], trace["cost_unknown"]),
            ]
        )
    )
    tree = Tree(label)
    children = trace["children"]
    if trace["error"] and not (len(children) == 1 and children[0]["error"] == trace["error"]):
        tree.add(Text.assemble(("error: ", "bold red"), excerpt(trace["error"])))
    _add_scores(tree, trace.get("scores") or ())
    _add_nodes(tree, trace["children"])
    return tree
