/* Training pages: the dataset picker reloads the form with that dataset's columns; the run page overlays each
   model's ROC, precision-recall and calibration curves (numbers computed by the server, read from json_script). */
(function () {
  "use strict";

  var PALETTE = ["#0172ad", "#d93526", "#2a7b3d", "#9236a4", "#c27a00", "#017a7a", "#5c5c5c"];

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function autosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  // Binary runs carry the curves directly; multiclass ones per class: show the first class against the rest.
  function binaryCurves(curves) {
    if (!curves) { return null; }
    if (curves.per_class) {
      var first = Object.keys(curves.per_class)[0];
      return first ? curves.per_class[first] : null;
    }
    return curves;
  }

  function lineChart(canvasId, series, xTitle, yTitle, diagonal) {
    var canvas = document.getElementById(canvasId);
    if (!canvas || !window.Chart) { return; }
    var datasets = series.map(function (item, index) {
      return {
        label: item.name,
        data: item.points,
        borderColor: PALETTE[index % PALETTE.length],
        backgroundColor: PALETTE[index % PALETTE.length],
        pointRadius: item.markers ? 3 : 0,
        borderWidth: 2,
        fill: false,
        showLine: true
      };
    });
    if (diagonal) {
      datasets.push({ label: "Reference", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: "#999", borderDash: [4, 4],
        pointRadius: 0, borderWidth: 1, showLine: true });
    }
    new window.Chart(canvas, {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { min: 0, max: 1, title: { display: true, text: xTitle } },
          y: { min: 0, max: 1, title: { display: true, text: yTitle } }
        }
      }
    });
  }

  function zip(xs, ys) {
    var points = [];
    for (var i = 0; i < Math.min(xs.length, ys.length); i += 1) { points.push({ x: xs[i], y: ys[i] }); }
    return points;
  }

  function runCharts() {
    var data = readJson("run-curves");
    if (!data || !data.models.length) { return; }
    var roc = [], pr = [], calibration = [];
    data.models.forEach(function (model) {
      var curves = binaryCurves(model.curves);
      if (!curves) { return; }
      if (curves.roc) { roc.push({ name: model.name, points: zip(curves.roc.fpr, curves.roc.tpr) }); }
      if (curves.pr) { pr.push({ name: model.name, points: zip(curves.pr.recall, curves.pr.precision) }); }
      if (curves.calibration) {
        calibration.push({ name: model.name, points: zip(curves.calibration.prob_pred, curves.calibration.prob_true), markers: true });
      }
    });
    lineChart("roc-chart", roc, "False positive rate (1 − specificity)", "True positive rate (sensitivity)", true);
    lineChart("pr-chart", pr, "Recall (sensitivity)", "Precision", false);
    lineChart("calibration-chart", calibration, "Predicted risk", "Observed share", true);
  }

  document.addEventListener("DOMContentLoaded", function () {
    autosubmit();
    runCharts();
  });
}());
