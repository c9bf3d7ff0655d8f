/* The anomaly detection page: train a detector (upload → poll the run), the histogram of validation scores with the
   threshold drawn where it lies (movable, saved with the detector), and scoring, each image shown with its anomaly
   map laid over it at the image's own size. */
(function () {
  "use strict";

  // Images smaller than this are shown enlarged by a whole factor (pixelated), so a 64 px image stays readable.
  var MIN_SHOWN_SIDE = 256;
  var ANOMALY_DETECTORS = {
    reconstruction: "Reconstruction error",
    isolation_forest: "Isolation Forest",
    local_outlier_factor: "Local Outlier Factor",
    one_class_svm: "One-Class SVM",
  };

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function request(url, options) {
    options = options || {};
    var headers = { Accept: "application/json" };
    if (options.method === "POST") {
      headers["X-CSRFToken"] = csrfToken();
    }
    if (options.json) {
      headers["Content-Type"] = "application/json";
    }
    return fetch(url, {
      method: options.method || "GET",
      body: options.json ? JSON.stringify(options.json) : options.body,
      credentials: "same-origin",
      headers: headers,
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) {
          throw new Error(data.detail || "The request was refused.");
        }
        return data;
      });
    });
  }

  function showError(box, message) {
    box.textContent = message;
    box.hidden = false;
    box.setAttribute("tabindex", "-1");
    box.focus();
  }

  function element(parent, tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    if (className) {
      node.className = className;
    }
    parent.appendChild(node);
    return node;
  }

  function number(value) {
    return Number(value).toPrecision(4);
  }

  function modeText(metrics) {
    if (metrics.mode === "patchcore") {
      return (
        "PatchCore: " +
        metrics.memory_bank_size +
        " normal patch features kept of " +
        metrics.patches_seen +
        " (pretrained EfficientNet-Lite0)"
      );
    }
    if (metrics.enhanced) {
      return "enhanced: reconstruction error + Isolation Forest, LOF and One-Class SVM";
    }
    return "autoencoder: reconstruction error only";
  }

  // ------------------------------------------------------------------ histogram and threshold
  var histogramChart = null;
  // The detector whose histogram is drawn, its histogram, and the scores of the images scored with it.
  var current = { model: null, histogram: null, scored: [] };

  // Draws the threshold as a red line at its exact value, and scored images as orange ticks, over the bars.
  var thresholdLine = {
    id: "thresholdLine",
    afterDatasetsDraw: function (chart) {
      var histogram = current.histogram;
      if (!histogram) {
        return;
      }
      var edges = histogram.edges;
      var scale = chart.scales.x;
      var bins = histogram.counts.length;
      var step = bins > 1 ? scale.getPixelForValue(1) - scale.getPixelForValue(0) : scale.width;
      var left = scale.getPixelForValue(0) - step / 2;
      var width = edges[bins] - edges[0] || 1;
      function pixel(value) {
        return Math.min(scale.right, Math.max(scale.left, left + ((value - edges[0]) / width) * step * bins));
      }
      var context = chart.ctx;
      var top = chart.chartArea.top;
      var bottom = chart.chartArea.bottom;
      context.save();
      current.scored.forEach(function (score) {
        var x = pixel(score);
        context.fillStyle = "rgba(230, 120, 0, 0.95)";
        context.beginPath();
        context.moveTo(x, bottom - 12);
        context.lineTo(x - 6, bottom);
        context.lineTo(x + 6, bottom);
        context.closePath();
        context.fill();
      });
      var x = pixel(histogram.threshold);
      context.strokeStyle = "rgba(200, 30, 30, 0.95)";
      context.lineWidth = 2;
      context.setLineDash([6, 4]);
      context.beginPath();
      context.moveTo(x, top);
      context.lineTo(x, bottom);
      context.stroke();
      context.setLineDash([]);
      context.fillStyle = "rgba(200, 30, 30, 0.95)";
      context.font = "12px sans-serif";
      var label = "threshold " + number(histogram.threshold);
      var labelWidth = context.measureText(label).width;
      context.fillText(label, x + 4 + labelWidth > scale.right ? x - labelWidth - 4 : x + 4, top + 12);
      context.restore();
    },
  };

  function drawHistogram(model) {
    var canvas = document.getElementById("anomaly-histogram");
    var histogram = model && model.metrics && model.metrics.histogram;
    if (!canvas || !histogram || !window.Chart) {
      return;
    }
    current.model = model;
    current.histogram = histogram;
    document.getElementById("histogram-section").hidden = false;
    var edges = histogram.edges;
    var labels = histogram.counts.map(function (_count, index) {
      return ((edges[index] + edges[index + 1]) / 2).toPrecision(3);
    });
    if (histogramChart) {
      histogramChart.destroy();
    }
    histogramChart = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: "Normal validation images", data: histogram.counts, backgroundColor: "rgba(54, 120, 200, 0.6)" },
        ],
      },
      options: {
        scales: { x: { title: { display: true, text: "Score" } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
      plugins: [thresholdLine],
    });
    var slider = document.getElementById("threshold-slider");
    if (slider) {
      var low = edges[0];
      var high = edges[edges.length - 1];
      slider.min = String(low);
      slider.max = String(high + (high - low) * 0.25);
      slider.step = String((high - low) / 200 || 0.0001);
      slider.value = String(histogram.threshold);
      slider.setAttribute("data-model-id", model.id);
      document.getElementById("threshold-value").textContent = number(histogram.threshold);
    }
    document.getElementById("histogram-summary").textContent =
      "Threshold " +
      number(histogram.threshold) +
      " (the " +
      Number(histogram.percentile).toFixed(1) +
      "th percentile of " +
      histogram.scores.length +
      " held-out normal images): images scoring above it are flagged." +
      (current.scored.length ? " Orange marks: the images you scored." : "");
  }

  function loadModel(id) {
    current.scored = [];
    return request("/api/v1/imaging/models/" + id + "/").then(drawHistogram);
  }

  function setUpThreshold() {
    var slider = document.getElementById("threshold-slider");
    if (!slider) {
      return;
    }
    var status = document.getElementById("threshold-status");
    slider.addEventListener("input", function () {
      document.getElementById("threshold-value").textContent = number(slider.value);
    });
    document.getElementById("threshold-save").addEventListener("click", function () {
      var id = slider.getAttribute("data-model-id");
      request("/api/v1/anomaly/models/" + id + "/threshold", { method: "POST", json: { threshold: Number(slider.value) } })
        .then(function (model) {
          drawHistogram(model);
          status.textContent = "Saved: new scores use threshold " + number(model.metric_value) + ".";
        })
        .catch(function (error) {
          status.textContent = error.message;
        });
    });
  }

  // ------------------------------------------------------------------ training
  function showTrained(model) {
    drawHistogram(model);
    var metrics = model.metrics || {};
    document.getElementById("result-threshold").textContent = number(metrics.threshold);
    document.getElementById("result-percentile").textContent = Number(metrics.threshold_percentile).toFixed(0);
    document.getElementById("result-mode").textContent = modeText(metrics);
    document.getElementById("result-report").href = "/models/" + model.id + "/report";
    document.getElementById("train-result").hidden = false;
    var select = document.getElementById("score-model");
    var option = document.createElement("option");
    option.value = model.id;
    option.textContent = "New detector " + model.id;
    select.insertBefore(option, select.firstChild);
    select.value = String(model.id);
  }

  function poll(runUrl, id) {
    request(runUrl + id + "/").then(function (run) {
      document.getElementById("train-progress").value = run.progress;
      document.getElementById("train-message").textContent = run.status + ": " + (run.error || run.message);
      if (run.status === "queued" || run.status === "running") {
        window.setTimeout(function () {
          poll(runUrl, id);
        }, 1500);
        return;
      }
      document.getElementById("train-submit").disabled = false;
      document.getElementById("train-stop").hidden = true;
      if (run.model_id) {
        request("/api/v1/imaging/models/" + run.model_id + "/").then(showTrained);
      }
    });
  }

  function setUpTraining() {
    var form = document.getElementById("imaging-train-form");
    if (!form) {
      return;
    }
    var errorBox = document.getElementById("train-error");
    var mode = document.getElementById("anomaly-mode");
    var enhanced = document.getElementById("anomaly-enhanced");
    // Enhanced mode is the autoencoder's ensemble: ticking it picks the autoencoder, picking PatchCore unticks it.
    enhanced.addEventListener("change", function () {
      if (enhanced.checked) {
        mode.value = "autoencoder";
      }
    });
    mode.addEventListener("change", function () {
      if (mode.value === "patchcore") {
        enhanced.checked = false;
      }
    });
    var runId = null;
    document.getElementById("train-stop").addEventListener("click", function () {
      if (runId) {
        request(form.getAttribute("data-run-url") + runId + "/stop/", { method: "POST" }).catch(function (error) {
          showError(errorBox, error.message);
        });
      }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      errorBox.hidden = true;
      document.getElementById("train-result").hidden = true;
      var submit = document.getElementById("train-submit");
      submit.disabled = true;
      request(form.getAttribute("data-api"), { method: "POST", body: new FormData(form) })
        .then(function (run) {
          runId = run.id;
          document.getElementById("train-status").hidden = false;
          document.getElementById("train-stop").hidden = false;
          poll(form.getAttribute("data-run-url"), run.id);
        })
        .catch(function (error) {
          submit.disabled = false;
          showError(errorBox, error.message);
        });
    });
  }

  // ------------------------------------------------------------------ scoring
  function mapFigure(card, item) {
    var width = item.map_size ? item.map_size[0] : null;
    var height = item.map_size ? item.map_size[1] : null;
    var figure = element(card, "figure", null, "anomaly-map");
    var image = element(figure, "img");
    image.src = item.heatmap;
    image.alt = "Anomaly map over " + item.file;
    var factor = 1;
    if (width && height) {
      factor = Math.max(1, Math.floor(MIN_SHOWN_SIDE / Math.max(width, height)));
      image.width = width * factor;
      image.height = height * factor;
      if (factor > 1) {
        image.classList.add("is-enlarged");
      }
    }
    var caption = element(figure, "figcaption", null, "small");
    var size = width ? width + " × " + height + " pixels, the image's own size" : "the image's own size";
    element(caption, "span", "Anomaly map over the image (" + size + (factor > 1 ? ", shown at " + factor + "×" : "") + "). ");
    var legend = element(caption, "span", null, "map-legend");
    if (item.mode === "patchcore") {
      element(legend, "span", "typical normal patch");
      element(legend, "span", null, "map-legend-bar").setAttribute("aria-hidden", "true");
      element(legend, "span", "at or above the threshold (a patch this unusual flags the image)");
    } else {
      element(legend, "span", "no reconstruction error");
      element(legend, "span", null, "map-legend-bar").setAttribute("aria-hidden", "true");
      element(legend, "span", "twice the usual largest error of normal images");
    }
  }

  function resultCard(item) {
    var card = document.createElement("article");
    card.className = "anomaly-result";
    element(card, "h3", item.file);
    if (item.error) {
      card.classList.add("is-error");
      element(card, "p", item.error);
      return card;
    }
    card.classList.add(item.is_anomaly ? "is-anomalous" : "is-normal");
    var verdict = element(card, "p", null, "verdict " + (item.is_anomaly ? "verdict-anomalous" : "verdict-normal"));
    element(verdict, "span", item.is_anomaly ? "⚠" : "✓").setAttribute("aria-hidden", "true");
    element(verdict, "span", item.is_anomaly ? "Anomalous" : "Normal");
    element(
      card,
      "p",
      "Score " +
        number(item.score) +
        " (threshold " +
        number(item.threshold) +
        "): " +
        (item.is_anomaly ? "above" : "at or below") +
        " the threshold, " +
        (item.score / item.threshold).toFixed(2) +
        " × it."
    );
    if (item.components) {
      // Enhanced mode: each detector's rank among normal validation images; the score is their weighted mean.
      var list = element(card, "ul", null, "small");
      list.setAttribute("aria-label", "Detector ranks among normal images");
      Object.keys(ANOMALY_DETECTORS).forEach(function (key) {
        if (key in item.components) {
          element(list, "li", ANOMALY_DETECTORS[key] + ": " + (100 * item.components[key]).toFixed(0) + "%");
        }
      });
    }
    if (item.heatmap) {
      mapFigure(card, item);
    }
    return card;
  }

  function setUpScoring() {
    var form = document.getElementById("imaging-predict-form");
    if (!form) {
      return;
    }
    var select = document.getElementById("score-model");
    if (select.value) {
      loadModel(select.value);
    }
    select.addEventListener("change", function () {
      loadModel(select.value);
    });
    var errorBox = document.getElementById("predict-error");
    var results = document.getElementById("predict-results");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      errorBox.hidden = true;
      results.textContent = "";
      request(form.getAttribute("data-api"), { method: "POST", body: new FormData(form) })
        .then(function (data) {
          current.scored = [];
          data.results.forEach(function (item) {
            results.appendChild(resultCard(item));
            if (!item.error) {
              current.scored.push(item.score);
            }
          });
          if (current.model && String(current.model.id) === String(data.model_id)) {
            drawHistogram(current.model);
          }
        })
        .catch(function (error) {
          showError(errorBox, error.message);
        });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpTraining();
    setUpScoring();
    setUpThreshold();
  });
})();
