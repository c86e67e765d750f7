// Drives a notifications page: an EventSource from the last update the page shows, new updates on top,
// a live/reconnecting indicator, and read marks. Update text is only ever set as textContent.
(function () {
  "use strict";
  const feed = document.getElementById("feed");
  const status = document.getElementById("status");
  const titles = JSON.parse(feed.dataset.titles);
  let last = Number(feed.dataset.after);
  let source = null;
  let readTimer = null;

  function setStatus(state, text) {
    status.className = "status " + state;
    status.textContent = text;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function item(update) {
    const li = element("li", "new");
    li.dataset.seq = update.seq;
    li.dataset.show = update.show;
    const meta = element("div", "meta");
    meta.append(element("strong", "show", update.title), " · ", element("span", "author", update.author), " · ");
    const time = element("time");
    time.dateTime = update.created_at;
    meta.append(localTime(time));
    li.append(meta, element("p", "text", update.text));
    return li;
  }

  function sendRead() {
    readTimer = null;
    if (last === 0) return;
    fetch("/api/me/read", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ seq: last }),
      credentials: "same-origin",
    }).then((response) => {
      const badge = document.getElementById("unread-count");
      if (response.ok && badge) badge.remove();  // everything up to the newest update on the page is read now
    });
  }

  function markRead() {
    // At most one request every two seconds, whatever the rate of updates.
    if (readTimer === null) readTimer = setTimeout(sendRead, 2000);
  }

  function onUpdate(event) {
    const update = JSON.parse(event.data);
    if (update.seq <= last) return;
    last = update.seq;
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
    feed.prepend(item(update));
    if (document.visibilityState === "visible") markRead();
  }

  function onFollows(event) {
    const following = document.getElementById("following");
    if (!following) return;
    const follows = JSON.parse(event.data).follows;
    const names = follows.map((slug) => titles[slug] || slug);
    following.textContent = names.length ? "Following: " + names.join(", ") : "You follow no shows yet.";
  }

  async function reconnectLater() {
    // The browser gives up on an EventSource after an HTTP error; find out why before trying again.
    const me = await fetch("/api/me", { credentials: "same-origin" }).catch(() => null);
    if (me && me.status === 401) {
      setStatus("offline", "logged out");
      return;
    }
    setTimeout(connect, 3000);
  }

  function connect() {
    source = new EventSource(feed.dataset.source + "?after=" + last);
    source.onopen = () => setStatus("live", "live");
    source.onerror = function () {
      setStatus("reconnecting", "reconnecting…");
      if (source.readyState === EventSource.CLOSED) reconnectLater();
    };
    source.addEventListener("update", onUpdate);
    source.addEventListener("follows", onFollows);
  }

  window.addEventListener("pagehide", () => source && source.close());
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && markRead());
  connect();
  sendRead();
})();
