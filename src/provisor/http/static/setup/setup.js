// Live connection check for the Provisor setup page (docs/setup-link.md).
// Polls the JSON status under this page's own link and updates the checklist.
// Everything from the server is written with textContent, never parsed as HTML.
"use strict";

(function () {
  var POLL_MS = 2000;
  var section = document.getElementById("checklist");
  if (!section) {
    return;
  }
  var url = section.getAttribute("data-status-url");
  var pollState = document.getElementById("poll-state");
  var errorsList = document.getElementById("errors");
  var noErrors = document.getElementById("no-errors");
  var logWarning = document.getElementById("log-warning");
  var timer = null;
  var lastErrors = "";

  // Live regions announce every change: write only what differs from what is shown.
  function setText(node, text) {
    if (node.textContent !== text) {
      node.textContent = text;
    }
  }

  function setCheck(check) {
    var item = document.getElementById("check-" + check.key);
    if (!item) {
      return;
    }
    var done = Boolean(check.done);
    item.className = done ? "done" : "pending";
    setText(item.querySelector(".mark"), done ? "✓" : "○");
    var state = done ? "seen " + (check.at || "") : "waiting";
    if (done && check.subject) {
      state += ": " + check.subject;
    }
    setText(item.querySelector(".state"), state);
  }

  function errorLine(error) {
    var li = document.createElement("li");
    var head = document.createElement("strong");
    head.textContent = error.status + " " + error.method + " " + error.path;
    li.appendChild(head);
    var parts = [];
    if (error.scimType) {
      parts.push("scimType " + error.scimType);
    }
    if (error.detail) {
      parts.push(error.detail);
    }
    if (parts.length) {
      var detail = document.createElement("span");
      detail.className = "detail";
      detail.textContent = parts.join(": ");
      li.appendChild(document.createTextNode(" "));
      li.appendChild(detail);
    }
    var at = document.createElement("span");
    at.className = "at";
    at.textContent = " (" + error.at + ")";
    li.appendChild(at);
    return li;
  }

  function render(status) {
    status.checks.forEach(setCheck);
    var errorsKey = JSON.stringify(status.errors);
    if (errorsKey !== lastErrors) {
      lastErrors = errorsKey;
      while (errorsList.firstChild) {
        errorsList.removeChild(errorsList.firstChild);
      }
      status.errors.forEach(function (error) {
        errorsList.appendChild(errorLine(error));
      });
    }
    noErrors.hidden = status.errors.length > 0;
    if (status.request_log === "off") {
      logWarning.textContent =
        "The request log is off for this tenant, so only deactivations can be seen here. " +
        "Ask your Provisor administrator to set request_log=metadata.";
      logWarning.hidden = false;
    } else {
      logWarning.hidden = true;
    }
    var done = status.checks.filter(function (c) { return c.done; }).length;
    setText(
      pollState,
      done + " of " + status.checks.length + " checks passed; " + status.requests +
        " request(s) seen with this page's token."
    );
  }

  function stop(message) {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
    setText(pollState, message);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 404 || response.status === 410) {
          stop("This setup link is no longer valid; ask your Provisor administrator for a new one.");
          return null;
        }
        if (!response.ok) {
          setText(pollState, "The status check failed (HTTP " + response.status + "); retrying.");
          return null;
        }
        return response.json();
      })
      .then(function (status) {
        if (status) {
          render(status);
        }
      })
      .catch(function () {
        setText(pollState, "Provisor could not be reached; retrying.");
      });
  }

  poll();
  timer = window.setInterval(poll, POLL_MS);

  // Copy fields: selecting the whole value on focus makes copying one keystroke.
  Array.prototype.forEach.call(document.querySelectorAll("input.copy"), function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
})();
