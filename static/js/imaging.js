/* Imaging pages: train (upload → poll the run → show results) and predict/score (results with heatmaps).
   The same markup ids serve /pipeline and /anomaly_detection; data-* attributes name the endpoints. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
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

  function cell(row, tag, text) {
    var element = document.createElement(tag);
    element.textContent = text;
    row.appendChild(element);
    return element;
  }

  function fillTable(table, header, rows) {
    var caption = table.querySelector("caption");
    table.textContent = "";
    if (caption) {
      table.appendChild(caption);
    }
    var head = table.createTHead().insertRow();
    header.forEach(function (text) {
      cell(head, "th", text).setAttribute("scope", "col");
    });
    var body = table.createTBody();
    rows.forEach(function (values) {
      var row = body.insertRow();
      values.forEach(function (value, index) {
        var element = cell(row, index === 0 ? "th" : "td", value);
        if (index === 0) {
          element.setAttribute("scope", "row");
        }
      });
    });
  }

  var histogramChart = null;
  var ANOMALY_DETECTORS = {
    reconstruction: "Reconstruction error",
    isolation_forest: "Isolation Forest",
    local_outlier_factor: "Local Outlier Factor",
    one_class_svm: "One-Class SVM",
  };

  function drawHistogram(model) {
    var canvas = document.getElementById("anomaly-histogram");
    var histogram = model && model.metrics && model.metrics.histogram;
    if (!canvas || !histogram || !window.Chart) {
      return;
    }
    document.getElementById("histogram-section").hidden = false;
    var edges = histogram.edges;
    var labels = histogram.counts.map(function (_count, index) {
      return ((edges[index] + edges[index + 1]) / 2).toPrecision(3);
    });
    // The threshold is drawn as a second dataset: a bar at the bin that holds it.
    var marker = histogram.counts.map(function (_count, index) {
      var inside = histogram.threshold >= edges[index] && histogram.threshold <= edges[index + 1];
      return inside ? Math.max.apply(null, histogram.counts) : 0;
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
          { label: "Threshold", data: marker, backgroundColor: "rgba(200, 30, 30, 0.9)", barPercentage: 0.15 },
        ],
      },
      options: { scales: { x: { stacked: true, title: { display: true, text: "Score" } }, y: { beginAtZero: true } } },
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
      document.getElementById("threshold-value").textContent = Number(histogram.threshold).toPrecision(4);
    }
    document.getElementById("histogram-summary").textContent =
      "Threshold " + Number(histogram.threshold).toPrecision(4) + " (" + histogram.percentile + "th percentile).";
  }

  function loadModel(id, then) {
    fetch("/api/v1/imaging/models/" + id + "/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (model) {
        if (model) {
          then(model);
        }
      });
  }

  function showResult(run, model) {
    drawHistogram(model);
    var result = document.getElementById("train-result");
    if (!result || !model) {
      return;
    }
    var metrics = model.metrics || {};
    var threshold = document.getElementById("result-threshold");
    if (threshold) {
      threshold.textContent = Number(metrics.threshold).toPrecision(4);
    }
    var mode = document.getElementById("result-mode");
    if (mode) {
      mode.textContent = metrics.enhanced
        ? "enhanced: reconstruction error + Isolation Forest, LOF and One-Class SVM"
        : "reconstruction error only";
    }
    var report = document.getElementById("result-report");
    if (report) {
      report.href = "/models/" + model.id + "/report";
    }
    var accuracy = document.getElementById("result-accuracy");
    if (accuracy) {
      accuracy.textContent = Number(metrics.accuracy).toFixed(3);
      document.getElementById("result-weights").textContent = metrics.imagenet_weights
        ? "started from ImageNet weights"
        : "trained from scratch";
      var names = metrics.class_names || [];
      var matrix = metrics.confusion_matrix || [];
      fillTable(
        document.getElementById("result-confusion"),
        ["True \\ predicted"].concat(names),
        matrix.map(function (row, index) {
          return [names[index]].concat(row.map(String));
        })
      );
      fillTable(
        document.getElementById("result-curve"),
        ["Epoch", "Train loss", "Validation loss", "Validation accuracy"],
        (metrics.history || []).map(function (epoch) {
          return [
            String(epoch.epoch),
            Number(epoch.train_loss).toFixed(4),
            Number(epoch.val_loss).toFixed(4),
            Number(epoch.val_accuracy).toFixed(3),
          ];
        })
      );
    }
    result.hidden = false;
    var select = document.querySelector("#imaging-predict-form select[name=model_id]");
    if (select) {
      var option = document.createElement("option");
      option.value = model.id;
      option.textContent = "New model " + model.id;
      select.insertBefore(option, select.firstChild);
      select.value = String(model.id);
    }
  }

  function poll(runUrl, id) {
    var progress = document.getElementById("train-progress");
    var message = document.getElementById("train-message");
    var submit = document.getElementById("train-submit");
    fetch(runUrl + id + "/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json();
      })
      .then(function (run) {
        progress.value = run.progress;
        message.textContent = run.status + ": " + (run.error || run.message);
        if (run.status === "queued" || run.status === "running") {
          window.setTimeout(function () {
            poll(runUrl, id);
          }, 1500);
          return;
        }
        submit.disabled = false;
        document.getElementById("train-stop").hidden = true;
        if (run.model_id) {
          fetch("/api/v1/imaging/models/" + run.model_id + "/", {
            credentials: "same-origin",
            headers: { Accept: "application/json" },
          })
            .then(function (response) {
              return response.json();
            })
            .then(function (model) {
              showResult(run, model);
            });
        }
      });
  }

  function setUpTraining() {
    var form = document.getElementById("imaging-train-form");
    if (!form) {
      return;
    }
    var errorBox = document.getElementById("train-error");
    var architecture = document.getElementById("train-architecture");
    if (architecture) {
      architecture.addEventListener("change", function () {
        var option = architecture.options[architecture.selectedIndex];
        document.getElementById("weights-text").textContent = option.getAttribute("data-weights");
      });
    }
    var runId = null;
    document.getElementById("train-stop").addEventListener("click", function () {
      if (runId) {
        post(form.getAttribute("data-run-url") + runId + "/stop/", new FormData()).catch(function (error) {
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
      post(form.getAttribute("data-api"), new FormData(form))
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

  function resultCard(item, anomaly) {
    var card = document.createElement("article");
    cell(card, "h3", item.file);
    if (item.error) {
      cell(card, "p", item.error);
      return card;
    }
    if (anomaly) {
      cell(card, "p", item.is_anomaly ? "Anomalous" : "Normal").className = "badge";
      cell(card, "p", "Score " + Number(item.score).toPrecision(4) + " (threshold " + Number(item.threshold).toPrecision(4) + ")");
      if (item.components) {
        // Enhanced mode: each detector's rank among normal validation images; the score is their mean.
        var list = document.createElement("ul");
        list.className = "small";
        list.setAttribute("aria-label", "Detector ranks among normal images");
        Object.keys(ANOMALY_DETECTORS).forEach(function (key) {
          if (key in item.components) {
            cell(list, "li", ANOMALY_DETECTORS[key] + ": " + (100 * item.components[key]).toFixed(0) + "%");
          }
        });
        card.appendChild(list);
      }
    } else {
      cell(card, "p", item.label + " · " + (100 * item.confidence).toFixed(1) + "%").className = "badge";
    }
    if (item.heatmap) {
      var image = document.createElement("img");
      image.src = item.heatmap;
      image.alt = (anomaly ? "Reconstruction error" : "Grad-CAM heatmap") + " over " + item.file;
      card.appendChild(image);
    }
    return card;
  }

  function setUpThreshold() {
    var slider = document.getElementById("threshold-slider");
    if (!slider) {
      return;
    }
    var status = document.getElementById("threshold-status");
    slider.addEventListener("input", function () {
      document.getElementById("threshold-value").textContent = Number(slider.value).toPrecision(4);
    });
    document.getElementById("threshold-save").addEventListener("click", function () {
      var id = slider.getAttribute("data-model-id");
      fetch("/api/v1/anomaly/models/" + id + "/threshold", {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ threshold: Number(slider.value) }),
      })
        .then(function (response) {
          return response.json().then(function (data) {
            if (!response.ok) {
              throw new Error(data.detail || "The threshold was not saved.");
            }
            return data;
          });
        })
        .then(function (model) {
          drawHistogram(model);
          status.textContent = "Saved: new scores use threshold " + Number(model.metric_value).toPrecision(4) + ".";
        })
        .catch(function (error) {
          status.textContent = error.message;
        });
    });
  }

  function setUpPrediction() {
    var form = document.getElementById("imaging-predict-form");
    if (!form) {
      return;
    }
    var anomaly = form.getAttribute("data-kind") === "anomaly";
    var select = form.querySelector("select[name=model_id]");
    if (anomaly && select && select.value) {
      loadModel(select.value, drawHistogram);
      select.addEventListener("change", function () {
        loadModel(select.value, drawHistogram);
      });
    }
    var errorBox = document.getElementById("predict-error");
    var results = document.getElementById("predict-results");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      errorBox.hidden = true;
      results.textContent = "";
      post(form.getAttribute("data-api"), new FormData(form))
        .then(function (data) {
          (data.predictions || data.results).forEach(function (item) {
            results.appendChild(resultCard(item, anomaly));
          });
        })
        .catch(function (error) {
          showError(errorBox, error.message);
        });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpTraining();
    setUpPrediction();
    setUpThreshold();
  });
})();
