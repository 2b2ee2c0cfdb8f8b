"""Reading what a page shows, for the browser tests: tables, summary cards, charts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from hypertool.instrumentation import display
from hypertool.instrumentation.cli import main
from hypertool.instrumentation.ui.tables import Column, lookup

_TABLE_JS = """
(name) => {
  const table = document.querySelector(`table[data-table="${name}"]`);
  if (!table) { return null; }
  const keys = [...table.querySelectorAll("thead th")].map((th) => th.dataset.key);
  return [...table.querySelectorAll("tbody tr")].map((tr) => {
    const row = {};
    [...tr.children].forEach((td, i) => {
      row[keys[i]] = { value: td.dataset.value ?? null, text: td.innerText.trim() };
    });
    return row;
  });
}
"""

_CHART_JS = """
(id) => {
  const figure = document.querySelector(`figure[data-chart="${id}"]`);
  if (!figure) { return null; }
  const spec = JSON.parse(figure.querySelector("script.chart-spec").textContent);
  const canvas = figure.querySelector("canvas");
  if (figure.dataset.drawn !== "true" || !canvas) { return { drawn: false }; }
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const rgb = (hex) => [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16));
  const colours = spec.series.map((s) => rgb(s.color));
  const counts = colours.map(() => 0);
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i + 3] < 200) { continue; }
    colours.forEach(([r, g, b], c) => {
      const distance =
        Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b);
      if (distance < 24) { counts[c] += 1; }
    });
  }
  const labels = figure.querySelectorAll(".u-legend .u-series:not(:first-child) .u-label");
  const legend = [...labels].map((e) => e.textContent);
  return {
    drawn: true,
    counts,
    labels: spec.series.map((s) => s.label),
    nonzero: spec.series.map((s) => s.values.some((v) => v)),
    legend,
  };
}
"""


def cli_json(capsys: pytest.CaptureFixture[str], store: Path, *argv: str) -> Any:
    """What ``hypertool --store STORE ARGV --json`` prints, parsed."""
    capsys.readouterr()
    code = main(["--store", str(store), *argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


async def table(page: Page, name: str) -> list[dict[str, dict[str, str | None]]]:
    """The rows of table ``name`` on the page: per column key, the raw value and the text."""
    rows = await page.evaluate(_TABLE_JS, name)
    assert rows is not None, f"no table {name!r} on {page.url}"
    return list(rows)


def shown_text(column: Column, row: Mapping[str, Any]) -> str:
    """How a page must show ``column`` of a CLI row: the display functions the CLI uses."""
    value = column.value(row)
    if column.kind in ("tokens", "count"):
        return display.tokens(value)
    if column.kind == "cost":
        unknown = lookup(row, column.unknown) if column.unknown else 0
        return display.cost(value, unknown or 0, short=True)
    if column.kind == "ms":
        return display.duration(value)
    if column.kind == "percent":
        return display.percent(value)
    if column.kind == "mean":
        return display.mean(value)
    raise AssertionError(f"not a number column: {column}")


def assert_rows_match(
    shown: Sequence[Mapping[str, Mapping[str, str | None]]],
    printed: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
) -> None:
    """Every number shown equals the CLI's: the raw value, and the text a person reads."""
    assert len(shown) == len(printed)
    for seen, row in zip(shown, printed, strict=True):
        for column in columns:
            if column.kind == "persona":
                assert seen[column.key]["text"] == (column.value(row) or "—")
            if not column.numeric:
                continue
            expected = column.value(row)
            raw = seen[column.key]["value"]
            assert (float(raw) if raw else None) == expected, (column.key, raw, expected)
            assert seen[column.key]["text"] == shown_text(column, row), column.key


async def chart(page: Page, chart_id: str) -> dict[str, Any]:
    """Whether chart ``chart_id`` was drawn, and the pixels of each series' colour."""
    result = await page.evaluate(_CHART_JS, chart_id)
    assert result is not None, f"no chart {chart_id!r} on {page.url}"
    return dict(result)


async def assert_charts_drawn(page: Page, *chart_ids: str) -> None:
    """Each chart is on a canvas, with every series that has data painted in its colour."""
    for chart_id in chart_ids:
        result = await chart(page, chart_id)
        assert result["drawn"], chart_id
        assert sorted(result["legend"]) == sorted(result["labels"]), chart_id
        for label, painted, has_data in zip(
            result["labels"], result["counts"], result["nonzero"], strict=True
        ):
            if has_data:
                assert painted > 0, f"{chart_id}: series {label!r} not drawn"
