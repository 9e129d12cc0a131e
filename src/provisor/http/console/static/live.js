// The events page's live refresh: every 5 s, fetch the rows newer than the newest shown (rendered
// and escaped by the server) and put them on top. No other page runs script.
"use strict";
(function () {
  const feed = document.getElementById("feed");
  if (!feed) return;
  const status = document.getElementById("live-status");
  async function refresh() {
    const after = feed.dataset.after || "0";
    try {
      const response = await fetch(feed.dataset.rows + "&after=" + encodeURIComponent(after), {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!response.ok) { status.textContent = "Live refresh stopped (HTTP " + response.status + ")."; return; }
      const html = (await response.text()).trim();
      if (html) {
        const body = document.createElement("tbody");
        body.innerHTML = html;
        const rows = Array.from(body.querySelectorAll("tr"));
        rows.reverse().forEach(function (row) { feed.insertBefore(row, feed.firstChild); });
        const first = feed.querySelector("tr[data-seq]");
        if (first) feed.dataset.after = first.dataset.seq;
        status.textContent = rows.length + " new event(s) at " + new Date().toLocaleTimeString() + ".";
      }
    } catch (error) {
      status.textContent = "Live refresh failed; it will retry.";
    }
    window.setTimeout(refresh, 5000);
  }
  window.setTimeout(refresh, 5000);
})();
