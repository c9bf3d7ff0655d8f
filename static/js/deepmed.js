/* DeepMed page behaviour. Loaded as a file because the CSP forbids inline scripts. */
(function () {
  "use strict";

  // Django's CSRF check for requests htmx sends (the token is rendered into a meta tag by base.html).
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) {
      event.detail.headers["X-CSRFToken"] = meta.content;
    }
  });

  // Small screens: collapse the main menu behind a button. Without JavaScript the menu simply stays open.
  function setUpMenu() {
    var toggle = document.querySelector(".nav-toggle");
    var menu = document.getElementById("site-menu");
    if (!toggle || !menu) {
      return;
    }
    var narrow = window.matchMedia("(max-width: 767px)");

    function setOpen(open) {
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      menu.classList.toggle("is-collapsed", !open);
    }

    toggle.hidden = false;
    setOpen(!narrow.matches);
    toggle.addEventListener("click", function () {
      setOpen(toggle.getAttribute("aria-expanded") !== "true");
    });
    narrow.addEventListener("change", function (event) {
      setOpen(!event.matches);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && narrow.matches && toggle.getAttribute("aria-expanded") === "true") {
        setOpen(false);
        toggle.focus();
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpMenu);
  } else {
    setUpMenu();
  }
})();
