/* Dataset upload with a progress bar. Without JavaScript the form posts normally and the server answers with a page. */
(function () {
  "use strict";

  function setUp() {
    var form = document.getElementById("upload-form");
    if (!form || !window.FormData || !window.XMLHttpRequest) {
      return;
    }
    var progress = document.getElementById("upload-progress");
    var bar = document.getElementById("upload-progress-bar");
    var text = document.getElementById("upload-progress-text");
    var errorBox = document.getElementById("upload-error");
    var errorText = document.getElementById("upload-error-text");
    var submit = document.getElementById("upload-submit");

    function showError(message) {
      errorText.textContent = message;
      errorBox.hidden = false;
      progress.hidden = true;
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
      errorBox.focus();
    }

    errorBox.setAttribute("tabindex", "-1");

    form.addEventListener("submit", function (event) {
      var fileInput = form.querySelector('input[type="file"]');
      if (!fileInput || !fileInput.files.length) {
        event.preventDefault();
        showError("Choose a file to upload.");
        return;
      }
      event.preventDefault();
      errorBox.hidden = true;
      progress.hidden = false;
      bar.value = 0;
      text.textContent = "0%";
      submit.disabled = true;
      submit.setAttribute("aria-busy", "true");

      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.setRequestHeader("Accept", "application/json");
      request.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      request.upload.onprogress = function (progressEvent) {
        if (progressEvent.lengthComputable) {
          var percent = Math.round((progressEvent.loaded / progressEvent.total) * 100);
          bar.value = percent;
          text.textContent = percent === 100 ? "100% — reading the file…" : percent + "%";
        }
      };
      request.onload = function () {
        var body = null;
        try {
          body = JSON.parse(request.responseText);
        } catch (ignored) {
          body = null;
        }
        if (request.status === 201 && body && body.redirect) {
          window.location.assign(body.redirect);
        } else if (body && body.detail) {
          showError(body.detail);
        } else if (request.status === 403) {
          showError("Your session has expired. Reload the page, sign in again and retry.");
        } else {
          showError("The upload failed (status " + request.status + "). Please try again.");
        }
      };
      request.onerror = function () {
        showError("The connection was lost during the upload. Check your network and try again.");
      };
      request.send(new FormData(form));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
