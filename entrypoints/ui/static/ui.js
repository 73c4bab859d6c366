// The console's progressive enhancement: every page works without it. No inline script: the
// Content-Security-Policy allows this file only.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function say(text) {
    var status = document.querySelector(".copy-status");
    if (status) { status.textContent = text; }
  }

  function copyText(text) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text);
    }
    return Promise.reject(new Error("no clipboard"));
  }

  document.addEventListener("DOMContentLoaded", function () {
    // A <select> in a form marked data-autosubmit submits it when changed (the type chooser).
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });

    // Forms that destroy or delete ask first.
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });

    // Copy a value already shown.
    document.querySelectorAll("[data-copy-from]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy-from"));
        copyText(source ? source.textContent : "").then(
          function () { say("Copied to the clipboard."); },
          function () { say("The browser did not allow copying."); }
        );
      });
    });

    // Copy without showing: an audited read whose answer goes to the clipboard only.
    document.querySelectorAll("[data-copy-url]").forEach(function (button) {
      button.addEventListener("click", function () {
        fetch(button.getAttribute("data-copy-url"), {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" }
        }).then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) { throw new Error(body.error || "refused"); }
            return copyText(body.value);
          });
        }).then(
          function () { say("Copied to the clipboard (not shown)."); },
          function (error) { say("Not copied: " + error.message); }
        );
      });
    });

    // A running job's progress (a migration), polled from data-poll-url until it finishes; the
    // page then reloads to show the report. Without script, the page's Refresh link does it.
    document.querySelectorAll("[data-poll-url]").forEach(function (box) {
      var url = box.getAttribute("data-poll-url");
      function show(body) {
        ["state", "done", "total", "failed", "remaining"].forEach(function (name) {
          var field = box.querySelector('[data-field="' + name + '"]');
          if (field) { field.textContent = String(body[name]); }
        });
        var bar = box.querySelector('[data-field="bar"]');
        if (bar) {
          bar.max = Math.max(body.total, 1);
          bar.value = body.done + body.failed;
        }
      }
      var timer = window.setInterval(function () {
        fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
          .then(function (response) {
            if (!response.ok) { throw new Error(String(response.status)); }
            return response.json();
          })
          .then(function (body) {
            show(body);
            if (body.finished) {
              window.clearInterval(timer);
              window.location.reload();
            }
          }, function () { window.clearInterval(timer); });
      }, 2000);
    });
  });
})();
