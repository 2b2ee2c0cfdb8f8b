// Draws every <figure class="chart"> from the JSON spec inside it, with the vendored uPlot.
// Specs come from ui/charts.py: kind "time" (x in seconds) or "category" (x indexes labels),
// style "line" | "bars", unit "usd" | "tokens" | "percent" | "count".
(function () {
  "use strict";

  function formatValue(unit, v) {
    if (v === null || v === undefined) { return "—"; }
    if (unit === "usd") {
      if (v === 0) { return "$0"; }
      return "$" + (Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(4));
    }
    if (unit === "percent") { return (v * 100).toFixed(1) + "%"; }
    if (Math.abs(v) >= 1e6) { return (v / 1e6).toFixed(1) + "M"; }
    if (Math.abs(v) >= 1e4) { return (v / 1e3).toFixed(0) + "k"; }
    return String(Math.round(v * 100) / 100);
  }

  // Stacked bars: each series drawn as the running sum, so bars sit on top of each other.
  function stack(series) {
    var sums = null;
    return series.map(function (s) {
      var values = s.values.map(function (v, i) {
        var base = sums ? sums[i] : 0;
        return (v === null ? 0 : v) + base;
      });
      sums = values;
      return values;
    });
  }

  function draw(figure) {
    var specNode = figure.querySelector("script.chart-spec");
    var plot = figure.querySelector(".plot");
    if (!specNode || !plot || typeof uPlot === "undefined") { return; }
    var spec = JSON.parse(specNode.textContent);
    if (!spec.series.length) {
      plot.textContent = "No data in this range.";
      plot.className = "plot empty";
      return;
    }
    var stacked = spec.stacked && spec.series.length > 1;
    var columns = stacked ? stack(spec.series) : spec.series.map(function (s) { return s.values; });
    var order = stacked ? columns.map(function (_, i) { return i; }).reverse() : null;
    var n = spec.series.length;
    var barPaths = uPlot.paths.bars({ size: [stacked || n === 1 ? 0.7 : 0.8 / n, 60] });
    var series = [{ label: spec.kind === "time" ? "Time" : (spec.xlabel || "") }];
    var data = [spec.x];
    var drawOrder = stacked ? order : spec.series.map(function (_, i) { return i; });
    drawOrder.forEach(function (i) {
      var s = spec.series[i];
      var entry = {
        label: s.label,
        stroke: s.color,
        width: spec.style === "bars" ? 0 : 2,
        value: (function (raw) {
          return function (u, v, si, di) {
            return di === null || di === undefined ? "—" : formatValue(spec.unit, raw[di]);
          };
        })(s.values),
        points: { show: spec.style === "line", size: 5 },
        spanGaps: false,
      };
      if (spec.style === "bars") {
        entry.fill = s.color;
        entry.paths = barPaths;
      }
      series.push(entry);
      data.push(columns[i]);
    });
    var xAxis = { stroke: "#6b7280", grid: { stroke: "#f3f4f6" } };
    var scales = { x: { time: spec.kind === "time" } };
    if (spec.kind === "category") {
      var labels = spec.labels;
      xAxis.values = function (u, splits) {
        return splits.map(function (v) { return Number.isInteger(v) && labels[v] !== undefined ? labels[v] : ""; });
      };
      xAxis.splits = function () { return spec.x; };
      var longest = labels.reduce(function (n, l) { return Math.max(n, l.length); }, 0);
      var crowded = longest * 7 * labels.length > plot.clientWidth - 80;
      xAxis.rotate = crowded ? -30 : 0;
      xAxis.size = crowded ? 30 + longest * 5 : 40;
      series[0].value = function (u, v) { return labels[v] === undefined ? "—" : labels[v]; };
      scales.x.range = function () { return [-0.5, spec.x.length - 0.5]; };
    } else {
      // The whole range asked for, half a bucket either side: one bucket is not a year.
      var half = (spec.bucket || 60) / 2;
      scales.x.range = function () { return [spec.x[0] - half, spec.x[spec.x.length - 1] + half]; };
    }
    var opts = {
      width: Math.max(plot.clientWidth, 320),
      height: 240,
      series: series,
      scales: scales,
      legend: { live: true },
      cursor: { points: { show: spec.style !== "bars" } },
      axes: [
        xAxis,
        {
          stroke: "#6b7280",
          grid: { stroke: "#f3f4f6" },
          size: function (u, values) {
            if (!values) { return 40; }
            var longest = values.reduce(function (n, v) { return Math.max(n, String(v).length); }, 0);
            return 16 + longest * 7;
          },
          values: function (u, splits) { return splits.map(function (v) { return formatValue(spec.unit, v); }); },
        },
      ],
    };
    var top = spec.unit === "percent" ? 1 : Infinity;
    opts.scales.y = {
      range: function (u, min, max) { return [0, max > 0 ? Math.min(max * 1.15, top) : 1]; },
    };
    var chart = new uPlot(opts, data, plot);
    figure.setAttribute("data-drawn", "true");
    figure.uplot = chart;
  }

  function drawAll() {
    var figures = document.querySelectorAll("figure.chart");
    for (var i = 0; i < figures.length; i++) { draw(figures[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
