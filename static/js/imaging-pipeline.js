/* The /pipeline composer: ordered steps built from the server's step catalogue, a server-side check that places
   each problem beside its step, a run posted to /api/pipeline, then live per-step progress and each step's output
   (counts per class and thumbnails) until the run ends. Endpoints come from data-* attributes of #pipeline-builder. */
(function () {
  "use strict";

  var TERMINAL = ["succeeded", "failed", "stopped"];
  var STATE_WORDS = {
    pending: "waiting",
    running: "running",
    done: "done",
    failed: "failed",
    stopped: "stopped",
    not_run: "not run",
  };

  var root = null;
  var catalog = {};
  var steps = []; // [{uid, type, values: {name: value}}]
  var nextUid = 1;
  var currentRun = null;
  var renderedRunSteps = {};

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function request(url, options) {
    options = options || {};
    var headers = { Accept: "application/json" };
    if (options.method && options.method !== "GET") {
      headers["X-CSRFToken"] = csrfToken();
    }
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    return fetch(url, {
      method: options.method || "GET",
      body: options.json !== undefined ? JSON.stringify(options.json) : options.body,
      credentials: "same-origin",
      headers: headers,
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return { detail: "The server answered " + response.status + " without details." };
        })
        .then(function (data) {
          return { ok: response.ok, status: response.status, data: data };
        });
    });
  }

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function show(box, message) {
    box.textContent = message;
    box.hidden = !message;
  }

  // ---------------------------------------------------------------- composing
  function defaultValues(type) {
    var values = {};
    catalog[type].params.forEach(function (param) {
      values[param.name] = param.default;
    });
    return values;
  }

  function readValue(param, input) {
    if (param.kind === "bool") {
      return input.checked;
    }
    if (param.kind === "choice" || param.kind === "str") {
      return input.value;
    }
    if (input.value.trim() === "") {
      return null; // the server names the field and what it must be
    }
    var number = Number(input.value);
    return Number.isNaN(number) ? input.value : number;
  }

  function fieldFor(step, position, param) {
    var id = "pipeline-step-" + step.uid + "-" + param.name;
    var label = element("label", { for: id });
    var hidden = element("span", { class: "visually-hidden" }, "Step " + position + " ");
    var value = step.values[param.name];
    var input;
    if (param.kind === "bool") {
      input = element("input", { type: "checkbox", id: id, role: "switch" });
      input.checked = Boolean(value);
      label.appendChild(input);
      label.appendChild(hidden);
      label.appendChild(document.createTextNode(param.label));
    } else {
      label.appendChild(hidden);
      label.appendChild(document.createTextNode(param.label));
      if (param.kind === "choice") {
        input = element("select", { id: id });
        param.choices.forEach(function (choice) {
          var option = element("option", { value: choice.value }, choice.label);
          option.selected = choice.value === value;
          input.appendChild(option);
        });
      } else {
        input = element("input", { type: "number", id: id, step: param.kind === "float" ? "any" : "1" });
        if (param.min !== null) {
          input.min = String(param.min);
        }
        if (param.max !== null) {
          input.max = String(param.max);
        }
        input.value = value === null || value === undefined ? "" : String(value);
        if (param.min !== null && param.max !== null) {
          label.appendChild(element("small", { class: "muted" }, " (" + param.min + "–" + param.max + ")"));
        }
      }
      label.appendChild(input);
    }
    input.addEventListener("change", function () {
      step.values[param.name] = readValue(param, input);
      clearMessages();
    });
    input.addEventListener("input", function () {
      step.values[param.name] = readValue(param, input);
    });
    return label;
  }

  function actionButton(text, label, handler, disabled) {
    var button = element("button", { type: "button", class: "outline secondary", "aria-label": label }, text);
    button.disabled = Boolean(disabled);
    button.addEventListener("click", handler);
    return button;
  }

  function move(uid, offset, focusLabel) {
    var index = steps.findIndex(function (step) {
      return step.uid === uid;
    });
    var target = index + offset;
    if (index < 0 || target < 0 || target >= steps.length) {
      return;
    }
    var moved = steps.splice(index, 1)[0];
    steps.splice(target, 0, moved);
    renderSteps();
    clearMessages();
    var again = root.querySelector('[data-uid="' + uid + '"] button[data-action="' + focusLabel + '"]');
    if (again && !again.disabled) {
      again.focus();
    }
  }

  function remove(uid) {
    steps = steps.filter(function (step) {
      return step.uid !== uid;
    });
    renderSteps();
    clearMessages();
    $("pipeline-add-type").focus();
  }

  function renderSteps() {
    var list = $("pipeline-steps");
    list.textContent = "";
    steps.forEach(function (step, index) {
      var position = index + 1;
      var spec = catalog[step.type];
      var item = element("li", { class: "pipeline-step pipeline-step-" + spec.group, "data-uid": String(step.uid) });
      var fieldset = element("fieldset");
      var legend = element("legend", {}, "Step " + position + ": " + spec.label + " ");
      legend.appendChild(element("span", { class: "badge" }, spec.group));
      fieldset.appendChild(legend);
      fieldset.appendChild(element("p", { class: "small muted" }, spec.description));
      var fields = element("div", { class: "pipeline-params" });
      spec.params.forEach(function (param) {
        fields.appendChild(fieldFor(step, position, param));
      });
      fieldset.appendChild(fields);
      var errors = element("ul", { class: "pipeline-step-errors", id: "pipeline-step-errors-" + step.uid });
      errors.hidden = true;
      fieldset.appendChild(errors);
      var actions = element("div", { class: "pipeline-step-actions" });
      var up = actionButton("↑ Up", "Move step " + position + " up", function () {
        move(step.uid, -1, "up");
      }, index === 0);
      up.setAttribute("data-action", "up");
      var down = actionButton("↓ Down", "Move step " + position + " down", function () {
        move(step.uid, 1, "down");
      }, index === steps.length - 1);
      down.setAttribute("data-action", "down");
      actions.appendChild(up);
      actions.appendChild(down);
      actions.appendChild(actionButton("Remove", "Remove step " + position, function () {
        remove(step.uid);
      }));
      fieldset.appendChild(actions);
      item.appendChild(fieldset);
      list.appendChild(item);
    });
    $("pipeline-empty").hidden = steps.length > 0;
  }

  function composition() {
    return steps.map(function (step) {
      return { type: step.type, params: step.values };
    });
  }

  function clearMessages() {
    show($("pipeline-error"), "");
    show($("pipeline-ok"), "");
    root.querySelectorAll(".pipeline-step").forEach(function (item) {
      item.classList.remove("has-errors");
      item.querySelector("fieldset").removeAttribute("aria-invalid");
    });
    root.querySelectorAll(".pipeline-step-errors").forEach(function (list) {
      list.textContent = "";
      list.hidden = true;
    });
  }

  function showProblems(data) {
    clearMessages();
    var errorBox = $("pipeline-error");
    var placed = data.step_problems;
    if (!placed) {
      // A refusal of the upload itself (one class, a zip bomb…): its detail says what to do.
      show(errorBox, data.detail || "The pipeline was refused.");
      errorBox.scrollIntoView({ block: "center" });
      return;
    }
    var general = [];
    placed.forEach(function (problem) {
      var step = problem.step ? steps[problem.step - 1] : null;
      var list = step ? $("pipeline-step-errors-" + step.uid) : null;
      if (!list) {
        general.push(problem.message);
        return;
      }
      list.appendChild(element("li", {}, problem.message));
      list.hidden = false;
      var item = list.closest(".pipeline-step");
      item.classList.add("has-errors");
      item.querySelector("fieldset").setAttribute("aria-invalid", "true");
    });
    var count = placed.length;
    var summary = "The pipeline cannot run yet: " + count + " problem" + (count === 1 ? "" : "s") + ".";
    show(errorBox, general.length ? summary + " " + general.join(" ") : summary + " See the marked steps.");
    var first = root.querySelector(".pipeline-step.has-errors");
    (first || errorBox).scrollIntoView({ block: "center" });
  }

  function check() {
    return request(root.getAttribute("data-validate-url"), { method: "POST", json: { steps: composition() } }).then(
      function (result) {
        if (!result.ok) {
          showProblems(result.data);
        }
        return result.ok;
      }
    );
  }

  // ---------------------------------------------------------------- a run's steps
  function summaryText(step) {
    var parts = [];
    if (step.result && step.result.accuracy !== undefined && step.result.accuracy !== null) {
      parts.push("validation accuracy " + Number(step.result.accuracy).toFixed(3));
      if (step.result.best_epoch) {
        parts.push("best epoch " + step.result.best_epoch);
      }
    }
    if (step.result && step.result.threshold !== undefined && step.result.threshold !== null) {
      parts.push("threshold " + Number(step.result.threshold).toPrecision(4));
    }
    if (step.images !== null && step.images !== undefined) {
      var classes = Object.keys(step.classes || {});
      var counts = classes
        .filter(function (name) {
          return name !== "";
        })
        .map(function (name) {
          return name + " " + step.classes[name];
        });
      var verb = step.result ? "trained on " : "";
      parts.push(
        verb + step.images + " image" + (step.images === 1 ? "" : "s") + (counts.length ? " (" + counts.join(", ") + ")" : "")
      );
    }
    return parts.join(" · ");
  }

  function paramsText(params) {
    return Object.keys(params)
      .map(function (name) {
        return name.replace(/_/g, " ") + " " + params[name];
      })
      .join(", ");
  }

  function runStepItem(step) {
    var item = element("li", { class: "pipeline-run-step state-" + step.state });
    var heading = element("h4", {}, "Step " + step.step + ": " + step.label + " ");
    heading.appendChild(element("span", { class: "badge" }, STATE_WORDS[step.state] || step.state));
    item.appendChild(heading);
    item.appendChild(
      element("progress", { max: "1", value: String(step.progress), "aria-label": "Step " + step.step + " progress" })
    );
    item.appendChild(element("p", { class: "small muted" }, paramsText(step.params)));
    var summary = summaryText(step);
    if (summary) {
      item.appendChild(element("p", { class: "pipeline-step-summary" }, summary));
    }
    if (step.samples && step.samples.length) {
      var thumbs = element("div", { class: "pipeline-thumbs" });
      step.samples.forEach(function (sample) {
        var figure = element("figure");
        figure.appendChild(
          element("img", {
            src: sample.url,
            alt: "Step " + step.step + " output " + sample.name,
            loading: "lazy",
            width: "96",
            height: "96",
          })
        );
        figure.appendChild(element("figcaption", {}, sample.name));
        thumbs.appendChild(figure);
      });
      item.appendChild(thumbs);
    }
    return item;
  }

  function renderRun(run) {
    $("pipeline-run-panel").hidden = false;
    $("pipeline-run-title").textContent = "Pipeline run " + run.id + ": " + run.status;
    $("pipeline-progress").value = run.progress;
    $("pipeline-message").textContent = run.message;
    var finished = TERMINAL.indexOf(run.status) >= 0;
    $("pipeline-stop").hidden = finished;
    show($("pipeline-run-error"), run.error || "");
    var list = $("pipeline-run-steps");
    run.steps.forEach(function (step, index) {
      // Replace only what changed, so thumbnails already shown do not flicker on every poll.
      var key = JSON.stringify(step);
      var existing = list.children[index];
      if (existing && renderedRunSteps[index] === key) {
        return;
      }
      var fresh = runStepItem(step);
      if (existing) {
        list.replaceChild(fresh, existing);
      } else {
        list.appendChild(fresh);
      }
      renderedRunSteps[index] = key;
    });
    var modelBox = $("pipeline-model");
    if (run.model_id) {
      modelBox.textContent = "Model " + run.model_name + " #" + run.model_id + " is saved. ";
      modelBox.appendChild(element("a", { href: run.models_url }, "Open it in My models"));
      modelBox.hidden = false;
    } else {
      modelBox.hidden = true;
    }
    return finished;
  }

  function watch(runId) {
    currentRun = runId;
    renderedRunSteps = {};
    $("pipeline-run-steps").textContent = "";
    var url = root.getAttribute("data-runs-url") + runId + "/steps/";
    function poll() {
      if (currentRun !== runId) {
        return; // another run is being shown now
      }
      request(url).then(function (result) {
        if (!result.ok) {
          show($("pipeline-run-error"), result.data.detail || "This run cannot be shown.");
          $("pipeline-run-panel").hidden = false;
          return;
        }
        if (!renderRun(result.data)) {
          window.setTimeout(poll, 1500);
        }
      });
    }
    poll();
  }

  // ---------------------------------------------------------------- wiring
  function fillMenu(entries) {
    var select = $("pipeline-add-type");
    select.textContent = "";
    var groups = {};
    entries.forEach(function (entry) {
      catalog[entry.type] = entry;
      if (!groups[entry.group]) {
        groups[entry.group] = element("optgroup", { label: entry.group.charAt(0).toUpperCase() + entry.group.slice(1) });
        select.appendChild(groups[entry.group]);
      }
      groups[entry.group].appendChild(element("option", { value: entry.type }, entry.label));
    });
    select.disabled = false;
    $("pipeline-add").disabled = false;
  }

  function run(event) {
    event.preventDefault();
    clearMessages();
    var file = $("pipeline-file").files[0];
    if (!file) {
      show($("pipeline-error"), "Choose a ZIP of images first.");
      $("pipeline-file").focus();
      return;
    }
    var button = $("pipeline-run");
    button.disabled = true;
    check()
      .then(function (valid) {
        if (!valid) {
          button.disabled = false;
          return;
        }
        var body = new FormData();
        body.append("file", file);
        body.append("steps", JSON.stringify(composition()));
        show($("pipeline-ok"), "Uploading and starting the pipeline…");
        return request(root.getAttribute("data-run-url"), { method: "POST", body: body }).then(function (result) {
          show($("pipeline-ok"), "");
          button.disabled = false;
          if (!result.ok) {
            showProblems(result.data);
            return;
          }
          watch(result.data.id);
          $("pipeline-run-panel").scrollIntoView({ block: "start" });
        });
      })
      .catch(function () {
        button.disabled = false;
        show($("pipeline-error"), "The server could not be reached. Check the connection and try again.");
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = $("pipeline-builder");
    if (!root) {
      return;
    }
    request(root.getAttribute("data-steps-url")).then(function (result) {
      if (!result.ok) {
        show($("pipeline-error"), result.data.detail || "The pipeline steps could not be loaded.");
        return;
      }
      fillMenu(result.data.steps);
    });
    $("pipeline-add").addEventListener("click", function () {
      var type = $("pipeline-add-type").value;
      if (!catalog[type]) {
        return;
      }
      steps.push({ uid: nextUid++, type: type, values: defaultValues(type) });
      renderSteps();
      clearMessages();
    });
    $("pipeline-validate").addEventListener("click", function () {
      check().then(function (valid) {
        if (valid) {
          show($("pipeline-ok"), "The pipeline can run: " + steps.length + " step" + (steps.length === 1 ? "" : "s") + ".");
        }
      });
    });
    $("pipeline-form").addEventListener("submit", run);
    $("pipeline-stop").addEventListener("click", function () {
      if (!currentRun) {
        return;
      }
      request(root.getAttribute("data-runs-url") + currentRun + "/stop/", { method: "POST", json: {} }).then(
        function (result) {
          if (!result.ok) {
            show($("pipeline-run-error"), result.data.detail || "The run could not be stopped.");
          }
        }
      );
    });
    root.querySelectorAll(".pipeline-show").forEach(function (button) {
      button.addEventListener("click", function () {
        watch(Number(button.getAttribute("data-run-id")));
        $("pipeline-run-panel").scrollIntoView({ block: "start" });
      });
    });
  });
})();
