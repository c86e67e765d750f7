// One live connection per browser profile. The tab that holds a Web Lock (the leader) opens the only EventSource,
// hands each event to its own page and relays it to the other tabs over a BroadcastChannel. When it closes or
// navigates away, the lock passes to another tab, which carries on from the last event id: ids are update seqs,
// and pages ignore an update they already have, so nothing is lost and nothing is shown twice. Signed out, the leader
// keeps the lock without a stream until a page of its user opens (see track). Without Web Locks or BroadcastChannel,
// each tab keeps its own EventSource.

// Every event type the stream sends; the relay carries each one the same way.
export const EVENTS = ["update", "edit", "retract", "follows", "preferences", "read", "resync", "expired"];
const RETRY_MS = 3000;  // before reconnecting once the server refused a stream for no stated reason
const ROLL_CALL_MS = 100;  // a new leader waits this long for the other tabs to say what they need

// options: user, need ("followed" or "all": /events/all), after (the newest update the page knows), read (the read
// mark the page shows), onEvent(type, data, fromNetwork), onStatus(state, text, signIn). Returns { anyVisible() }.
export function connect(options) {
  const tab = Math.random().toString(36).slice(2);
  const channel = "locks" in navigator && "BroadcastChannel" in window
    ? new BroadcastChannel("gossip-live:" + options.user) : null;
  const tabs = new Map();  // the leader's view of the open tabs: id -> { need, visible }
  let position = Number(options.after);  // the stream's last event id, as far as this tab knows
  let read = Number(options.read);  // the read mark this tab shows, the newest `read` event's once one came
  let leading = false;
  let source = null;
  let carrying = null;  // the need the open source serves
  let timer = null;
  let stopped = false;  // signed out: no stream until a tab joins
  let status = { kind: "status", state: "", text: "connecting…", signIn: false };

  function visible() {
    return document.visibilityState === "visible";
  }

  function post(message) {
    if (channel) channel.postMessage(message);
  }

  // "tab" when joining or answering a roll call, so that the leader carries on from where this tab is, and from the
  // read mark it shows; "visible" when only that changed.
  function announce(kind) {
    post({ kind: kind, tab: tab, need: options.need, after: position, read: read, visible: visible() });
  }

  function setStatus(state, text, signIn) {
    status = { kind: "status", state: state, text: text, signIn: signIn };
    options.onStatus(state, text, signIn);
    post(status);
  }

  function wanted() {
    return [...tabs.values()].some((other) => other.need === "all") ? "all" : "followed";
  }

  // The user is named, so that a browser signed in as someone else since is refused (403), not sent their events.
  // The read mark shown is named too: one made after the page was made (the last page's, sent as it was left)
  // reached no stream of this page, and the stream then starts by telling it.
  function url() {
    const path = carrying === "all" ? "/events/all" : "/events";
    return path + "?after=" + position + "&read=" + read + "&user=" + encodeURIComponent(options.user);
  }

  function open() {
    clearTimeout(timer);
    stopped = false;
    if (source) source.close();
    carrying = wanted();
    source = new EventSource(url());
    source.onopen = () => setStatus("live", "live", false);
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) probe();  // an HTTP error: the browser will not retry
      else setStatus("reconnecting", "reconnecting…", false);
    };
    for (const type of EVENTS) source.addEventListener(type, (event) => relay(type, event));
  }

  // Logged out or expired, the same to the reader: signed out.
  function stop() {
    clearTimeout(timer);
    if (source) source.close();
    source = null;
    stopped = true;
    setStatus("offline", "signed out", true);
  }

  function later(ms) {
    clearTimeout(timer);
    timer = setTimeout(open, ms);
  }

  // The EventSource does not say why it was refused, so ask once more with fetch and read the answer.
  async function probe() {
    source.close();
    const asked = new AbortController();
    const response = await fetch(url(), { signal: asked.signal, credentials: "same-origin" }).catch(() => null);
    if (response && response.ok) asked.abort();  // it would have worked: no need to read the stream
    if (response && (response.status === 401 || response.status === 403)) return stop();  // 403: another user's
    if (response && (response.status === 429 || response.status === 503)) {
      const error = await response.json().catch(() => ({}));
      setStatus("refused", error.detail || "The server is busy.", false);
      return later(1000 * (Number(response.headers.get("retry-after")) || 30));
    }
    setStatus("reconnecting", "reconnecting…", false);
    later(RETRY_MS);
  }

  function relay(type, event) {
    const data = JSON.parse(event.data);
    if (event.lastEventId) position = Number(event.lastEventId);
    if (type === "read") read = data.last_read_seq;
    post({ kind: "event", type: type, data: data, id: event.lastEventId });
    options.onEvent(type, data, true);
    if (type === "expired") stop();
  }

  // A tab joined or answered the roll call: carry what it needs, from where it is. Read marks only grow, so of two
  // tabs that show different ones the lower missed a mark (told while it was not listening): the stream opened again
  // names the lower, and the server tells every tab the newest. Signed out, try once more: a
  // joining page was made for this user signed in, so they may have logged in again (in it, or as it loaded). The
  // lock and the channel are this user's, so a page of another user on this browser does not wake this one; and it
  // is one attempt per page that opens, so a browser left signed out never loops. If refused, it stays signed out.
  function track(message) {
    tabs.set(message.tab, { need: message.need, visible: message.visible });
    const behind = message.after < position;
    const shown = Number.isInteger(message.read) ? message.read : read;  // a page made before tabs said it says none
    const missed = shown !== read;
    position = Math.min(position, message.after);
    read = Math.min(read, shown);
    if (stopped) return open();  // its status ("live", or "signed out" again) reaches the new tab as it comes
    if (source && (behind || missed || wanted() !== carrying)) open();
    post(status);
  }

  function lead() {
    leading = true;
    tabs.set(tab, { need: options.need, visible: visible() });
    post({ kind: "roll" });
    timer = setTimeout(open, channel ? ROLL_CALL_MS : 0);
  }

  function receive(message) {
    if (message.kind === "event") {
      if (message.id) position = Number(message.id);
      if (message.type === "read") read = message.data.last_read_seq;
      options.onEvent(message.type, message.data, false);
    } else if (message.kind === "status") {
      options.onStatus(message.state, message.text, message.signIn);
    } else if (message.kind === "roll") {
      announce("tab");
    } else if (leading && message.kind === "tab") {
      track(message);
    } else if (leading && message.kind === "visible") {
      tabs.set(message.tab, { need: message.need, visible: message.visible });
    } else if (leading && message.kind === "bye") {
      tabs.delete(message.tab);
      if (source && wanted() !== carrying) open();
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (leading) tabs.set(tab, { need: options.need, visible: visible() });
    else announce("visible");
  });
  window.addEventListener("pagehide", () => {
    post({ kind: "bye", tab: tab });
    if (source) source.close();
  });
  if (channel) {
    channel.onmessage = (message) => receive(message.data);
    announce("tab");
    navigator.locks.request("gossip-live:" + options.user, () => new Promise(() => lead()));  // held for good
  } else {
    lead();
  }
  return {
    anyVisible: () => (leading && channel ? [...tabs.values()].some((other) => other.visible) : visible()),
  };
}
