// The operator console: fills the page from GET /api/admin/console every few seconds, and sends the admin's actions
// as JSON (a cross-site form cannot), then refreshes at once. Everything from the database is set as text.
"use strict";

(() => {
  const EVERY = 3000;
  const said = document.getElementById("console-said");

  function cell(row, text) {
    const td = row.insertCell();
    td.textContent = text === null || text === undefined ? "" : String(text);
    return td;
  }

  // A value as long as MongoDB lets it be (an id, a time, a rejected document's words) wraps anywhere, so that the
  // table fits a phone's width; short ones (counts, show slugs) keep their width and are never split.
  function long(row, text) {
    cell(row, text).classList.add("long");
  }

  function fill(id, rows, columns) {
    const body = document.querySelector(`#${id} tbody`);
    body.replaceChildren();
    for (const item of rows) {
      const row = body.insertRow();
      for (const column of columns) {
        column(row, item);
      }
    }
  }

  function releaseButton(row, item) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Release";
    button.dataset.release = item._id;
    button.addEventListener("click", () => act("POST", `/api/admin/rejected/${encodeURIComponent(item._id)}/release`,
      `Released ${item._id}.`));
    row.insertCell().append(button);
  }

  function show(view) {
    document.getElementById("console-at").textContent = `as of ${view.at}`;
    fill("processes", view.processes, [
      (row, p) => long(row, p.process), (row, p) => cell(row, p.feeds), (row, p) => cell(row, p.users),
      (row, p) => cell(row, p.lag === null ? "–" : p.lag.toFixed(3)), (row, p) => long(row, p.reported_at),
    ]);
    fill("show-feeds", Object.entries(view.feeds_per_show), [(row, [show]) => cell(row, show),
      (row, [, count]) => cell(row, count)]);
    fill("publishes", view.publishes.per_minute, [(row, m) => cell(row, m.minute.slice(11, 16)),
      (row, m) => cell(row, m.count)]);
    document.getElementById("publishes-capped").hidden = !view.publishes.capped;
    fill("refusals", Object.entries(view.refusals), [(row, [limit]) => cell(row, limit),
      (row, [, count]) => cell(row, count)]);
    fill("empty-buckets", Object.entries(view.empty_buckets), [(row, [limit]) => cell(row, limit),
      (row, [, count]) => cell(row, count)]);
    fill("rejected", view.rejected, [(row, d) => long(row, d._id), (row, d) => long(row, d.reason),
      (row, d) => cell(row, d.show), (row, d) => long(row, d.text), releaseButton]);
    fill("audit", view.audit, [(row, a) => long(row, a.at), (row, a) => cell(row, a.who),
      (row, a) => cell(row, a.what), (row, a) => long(row, a.target)]);
  }

  function tell(message) {
    said.textContent = message;
    said.hidden = false;
  }

  async function refresh() {
    try {
      const response = await fetch("/api/admin/console", { headers: { Accept: "application/json" } });
      if (response.ok) {
        show(await response.json());
      }
    } catch {
      // the server is away for a moment: the next round tries again
    }
  }

  async function act(method, path, done) {
    try {
      const response = await fetch(path, {
        method, headers: { "Content-Type": "application/json", Accept: "application/json" }, body: "{}",
      });
      tell(response.ok ? done : (await response.json()).detail);
    } catch {
      tell("The server could not be reached; nothing was done.");
    }
    await refresh();
  }

  document.getElementById("retract").addEventListener("submit", (event) => {
    event.preventDefault();
    const seq = event.target.elements.seq.value.trim();
    act("DELETE", `/api/admin/updates/${encodeURIComponent(seq)}`, `Retracted update ${seq}.`);
  });
  document.getElementById("end-sessions").addEventListener("submit", (event) => {
    event.preventDefault();
    const username = event.target.elements.username.value.trim();
    act("DELETE", `/api/admin/users/${encodeURIComponent(username)}/sessions`, `Ended ${username}'s sessions.`);
  });

  refresh();
  setInterval(() => {
    if (document.visibilityState === "visible") {
      refresh();
    }
  }, EVERY);
})();
