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

    // "Check the value" on the create form (data-check): the type's check fetched as JSON, so
    // the typed value stays in the form; without script the page comes back with the parts and
    // an empty value field. Parts are set as text (never as HTML).
    document.querySelectorAll("button[data-check]").forEach(function (button) {
      var form = button.form;
      var box = form.querySelector("[data-check-result]");
      if (!box) { return; }
      button.addEventListener("click", function (event) {
        event.preventDefault();
        var body = new FormData(form);
        body.set("action", "check");
        var error = box.querySelector("[data-check-error]");
        var list = box.querySelector("[data-check-parts]");
        fetch(form.getAttribute("action") || window.location.href, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" },
          body: body
        }).then(function (response) {
          return response.json().then(function (answer) { return [response.ok, answer]; });
        }).then(function (result) {
          var answer = result[1];
          list.textContent = "";
          error.hidden = result[0];
          error.textContent = result[0] ? "" : (answer.error || "The value was not accepted.");
          var parts = answer.parts || {};
          Object.keys(parts).forEach(function (name) {
            var term = document.createElement("dt");
            term.textContent = name;
            var detail = document.createElement("dd");
            detail.textContent = parts[name];
            list.appendChild(term);
            list.appendChild(detail);
          });
          if (result[0] && !Object.keys(parts).length) {
            var term = document.createElement("dt");
            term.textContent = "valid";
            var none = document.createElement("dd");
            none.textContent = "nothing of it is shown (its parts are secret)";
            list.appendChild(term);
            list.appendChild(none);
          }
          box.hidden = false;
        }, function () {
          list.textContent = "";
          error.hidden = false;
          error.textContent = "The check could not be made; try again.";
          box.hidden = false;
        });
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
