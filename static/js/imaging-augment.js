/* /augment: preview a preset on a few images, run the job, poll it, then offer the download. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function request(url, body) {
    var options = { credentials: "same-origin", headers: { Accept: "application/json", "X-CSRFToken": csrfToken() } };
    if (body) {
      options.method = "POST";
      options.body = body;
    }
    return fetch(url, options).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) {
          throw new Error(data.detail || "The request was refused.");
        }
        return data;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("augment-form");
    if (!form) {
      return;
    }
    var errorBox = document.getElementById("augment-error");
    function showError(error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
      errorBox.setAttribute("tabindex", "-1");
      errorBox.focus();
    }

    document.getElementById("augment-preview-button").addEventListener("click", function () {
      var input = document.getElementById("augment-preview-file");
      if (!input.files.length) {
        showError(new Error("Choose one to four images to preview."));
        return;
      }
      errorBox.hidden = true;
      var body = new FormData();
      body.append("preset", document.getElementById("augment-preset").value);
      Array.prototype.slice.call(input.files, 0, 4).forEach(function (file) {
        body.append("file", file);
      });
      request(form.getAttribute("data-preview"), body)
        .then(function (data) {
          document.getElementById("augment-preview-image").src = data.preview;
          document.getElementById("augment-preview").hidden = false;
        })
        .catch(showError);
    });

    function poll(id) {
      request("/api/v1/augment/" + id + "/")
        .then(function (job) {
          document.getElementById("augment-progress").value = job.progress;
          document.getElementById("augment-message").textContent = job.status + ": " + (job.error || job.message);
          if (job.status === "queued" || job.status === "running") {
            window.setTimeout(function () {
              poll(id);
            }, 1500);
            return;
          }
          document.getElementById("augment-submit").disabled = false;
          if (job.download_url) {
            var link = document.getElementById("augment-download");
            link.href = job.download_url;
            link.hidden = false;
          }
        })
        .catch(showError);
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      errorBox.hidden = true;
      document.getElementById("augment-submit").disabled = true;
      request(form.getAttribute("data-api"), new FormData(form))
        .then(function (job) {
          document.getElementById("augment-status").hidden = false;
          poll(job.id);
        })
        .catch(function (error) {
          document.getElementById("augment-submit").disabled = false;
          showError(error);
        });
    });
  });
})();
