/* Charts of the tabular pages, drawn from numbers the server computed (json_script); never from rows. */
(function () {
  "use strict";

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function accent() {
    var style = getComputedStyle(document.documentElement);
    return (style.getPropertyValue("--pico-primary") || "#0172ad").trim();
  }

  function barChart(canvas, labels, values, options) {
    options = options || {};
    return new window.Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: options.label || "", data: values, backgroundColor: accent() }] },
      options: {
        indexAxis: options.horizontal ? "y" : "x",
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: {
          x: { ticks: { autoSkip: true, maxRotation: 45 }, title: { display: !!options.xTitle, text: options.xTitle || "" } },
          y: { beginAtZero: true, title: { display: !!options.yTitle, text: options.yTitle || "" } }
        }
      }
    });
  }

  function formatEdge(value) {
    return Math.abs(value) >= 1000 || value === Math.round(value) ? String(Math.round(value)) : value.toPrecision(3);
  }

  function profileCharts() {
    var charts = readJson("profile-charts");
    if (!charts) {
      return;
    }
    var missing = document.getElementById("chart-missing");
    if (missing) {
      var rows = charts.missing.filter(function (row) { return row.share > 0; });
      if (!rows.length) {
        missing.parentNode.replaceChild(document.createTextNode("No missing values."), missing);
      } else {
        missing.parentNode.style.height = Math.max(120, rows.length * 22 + 40) + "px";
        barChart(missing, rows.map(function (row) { return row.name; }),
          rows.map(function (row) { return Math.round(row.share * 1000) / 10; }),
          { horizontal: true, label: "% missing", xTitle: "% of rows missing" });
      }
    }
    var balanceCanvas = document.getElementById("chart-class-balance");
    var target = charts.target;
    if (balanceCanvas && target && target.class_counts && target.class_counts.length) {
      barChart(balanceCanvas, target.class_counts.map(function (item) { return String(item.value); }),
        target.class_counts.map(function (item) { return item.count; }), { label: "rows", yTitle: "rows" });
    }
    document.querySelectorAll("canvas[data-histogram]").forEach(function (canvas) {
      var histogram = charts.histograms[canvas.getAttribute("data-histogram")];
      if (!histogram) {
        return;
      }
      var labels = histogram.counts.map(function (count, index) {
        return formatEdge(histogram.edges[index]) + "–" + formatEdge(histogram.edges[index + 1]);
      });
      barChart(canvas, labels, histogram.counts, { label: "rows" });
    });
  }

  function selectionChart() {
    var chart = readJson("selection-chart");
    var canvas = document.getElementById("chart-selection");
    if (!chart || !canvas || !chart.labels.length) {
      return;
    }
    canvas.parentNode.style.height = Math.max(160, chart.labels.length * 22 + 40) + "px";
    barChart(canvas, chart.labels, chart.scores, { horizontal: true, label: "score", xTitle: "score" });
  }

  function setUp() {
    if (!window.Chart) {
      return;
    }
    profileCharts();
    selectionChart();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
