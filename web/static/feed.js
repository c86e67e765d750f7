// What a page does with the live events: the unread badge on every page, the status line (and the header once signed
// out), new updates on top of a live notifications page (which marks them read), edits and retractions in place, the
// Shows page's buttons, muted shows left out, the resync notice, and desktop notifications when asked for. Text from
// updates is only ever set as textContent.
import { element } from "./dom.js";
import { connect } from "./live.js";

const body = document.body;
const user = body.dataset.user;
const list = document.querySelector("#feed[data-live]");  // only on a live notifications page
const need = list ? list.dataset.live : "followed";
const titles = list ? JSON.parse(list.dataset.titles) : {};
const newestShown = list && list.firstElementChild ? Number(list.firstElementChild.dataset.seq) : 0;
const NOTIFY = "gossip.notify";  // localStorage: "on" once the user turned desktop notifications on
const READ_TRIES = 5;  // a read mark that fails to send is tried again after 2, 4, 8 and 16 s, then left to the next
let follows = new Set(JSON.parse(body.dataset.follows));
// Muted shows and personal topics: not counted as unread, not listed in Notifications (All Notifs lists them as read,
// as it lists the updates of shows not followed).
let muted = new Set(JSON.parse(body.dataset.muted));
let unread = Number(body.dataset.unread);
const COUNT_CAP = Number(body.dataset.countCap);  // the server counts up to here: at or past it, "200+"
let lastRead = Number(body.dataset.lastRead);
let last = Math.max(Number(body.dataset.after), newestShown);  // the newest update this page has
let readTimer = null;
let readOnceLive = list !== null;  // what the page lists is marked read once live, so that the `read` event reaches it
// A page another site opened marks nothing read until the person acts on it: no site may clear the unread updates.
let mayMarkRead = list === null || !("openedByAnotherSite" in list.dataset);
let shownState = "";  // the status line's state
let wasLive = false;  // live before: going live again is a reconnect, after which the page reads back what it lists

function visible() {
  return document.visibilityState === "visible";
}

function counted(count) {
  return count >= COUNT_CAP ? COUNT_CAP + "+" : String(count);
}

function setUnread(count) {
  unread = count;
  let badge = document.getElementById("unread-count");
  if (count > 0 && !badge) {
    badge = element("span", "badge");
    badge.id = "unread-count";
    badge.title = "unread";
    document.getElementById("notifications-link").append(" ", badge);
  }
  if (badge && count > 0) badge.textContent = counted(count);
  else if (badge) badge.remove();
  const home = document.getElementById("unread");
  if (home) home.textContent = counted(count);
}

function setStatus(state, text, signIn) {
  const status = document.getElementById("status");
  status.className = "status " + state;
  status.textContent = text;
  document.getElementById("status-login").hidden = !signIn;
  document.querySelectorAll(".signed-in").forEach((node) => { node.hidden = signIn; });
  if (state === "live" && readOnceLive && visible() && mayMarkRead) {  // one opened out of sight, nothing yet
    readOnceLive = false;
    sendRead();
  }
  if (state === "live" && shownState !== "live" && wasLive && list) refresh();
  if (state === "live") wasLive = true;
  shownState = state;
}

function item(update, news) {
  const li = element("li", news ? "new" : "");  // not news (unheard, or the user's own): as a read one
  li.dataset.seq = update.seq;
  li.dataset.show = update.show;
  const meta = element("div", "meta");
  if (update.personal) {
    li.classList.add("personal");
    const mark = element("span", "personal", "for you");
    mark.title = "for you alone";
    meta.append(mark, " · ");
  }
  meta.append(element("strong", "show", update.title), " · ", element("span", "author", update.author), " · ");
  const time = element("time");
  time.dateTime = update.created_at;
  meta.append(localTime(time));
  li.append(meta, element("p", "text", update.text));
  if (update.edited_at) markEdited(li, update.edited_at);
  return li;
}

function showFollowing() {
  const following = document.getElementById("following");
  if (!following) return;
  const names = [...follows].sort().map((slug) => (titles[slug] || slug) + (muted.has(slug) ? " (muted)" : ""));
  following.textContent = names.length ? "Following: " + names.join(", ") : "You follow no shows yet.";
}

function markEdited(li, when) {
  let mark = li.querySelector(".edited");
  if (!mark) {
    mark = element("span", "edited", "edited");
    li.querySelector(".meta").append(" · ", mark);
  }
  mark.title = "edited " + new Date(when).toLocaleString();
}

// A show of the Shows page, its button as the page would now be made: followed in another tab, it offers Unfollow.
function showFollowed(li) {
  const followed = follows.has(li.dataset.show);
  const button = li.querySelector("button[name=action]");
  button.value = followed ? "unfollow" : "follow";
  button.textContent = followed ? "Unfollow" : "Follow";
  button.className = followed ? "secondary" : "";
}

// What counts as unread and fills Notifications: a followed show's update, or a personal one (the user's own,
// whatever they follow), unless its show or topic is muted.
function heard(show, personal) {
  return (personal || follows.has(show)) && !muted.has(show);
}

// Notifications (of followed shows) lists only what is heard, and All Notifs lists the rest (shows not followed, shows
// and topics muted) as it lists read ones, neither unread nor new: as a show is unfollowed or muted in another tab,
// its updates leave Notifications and lose All Notifs' marks at once.
function showUnheard() {
  if (!list) return;
  list.querySelectorAll("li[data-show]").forEach((li) => {
    if (heard(li.dataset.show, li.classList.contains("personal"))) return;
    if (need === "all") li.classList.remove("unread", "new");
    else li.remove();
  });
}

function listed(seq) {
  return list && list.querySelector('li[data-seq="' + Number(seq) + '"]');
}

function showAsNow(li, update) {
  li.querySelector(".text").textContent = update.text;
  if (update.edited_at) markEdited(li, update.edited_at);
}

async function refresh() {
  // Edits and retractions carry no id, so a feed that was away is not sent them again: after a reconnect the page
  // reads what it lists back from history, edited or gone. A bounded number of pages of it.
  const items = Array.from(list.querySelectorAll("li[data-seq]"));
  if (!items.length) return;
  let after = Math.min(...items.map((li) => Number(li.dataset.seq))) - 1;
  const found = new Map();
  for (let page = 0; page < 10 && after < last; page++) {
    const response = await fetch("/api/updates?limit=1000&after=" + after, { credentials: "same-origin" });
    if (!response.ok) return;
    const history = await response.json();
    history.items.forEach((update) => found.set(update.seq, update));
    after = history.next_after === after ? last : history.next_after;
  }
  for (const li of items) {
    const update = found.get(Number(li.dataset.seq));
    if (update) showAsNow(li, update);
    else if (Number(li.dataset.seq) <= after) li.remove();
  }
}

async function sendRead(tries = 0) {
  clearTimeout(readTimer);
  readTimer = null;
  if (last === 0) return;
  // The badges of every tab and device follow from the `read` event the server sends back. The page names its user:
  // signed in as someone else since, the browser is refused (403) and nothing is marked.
  const response = await fetch("/api/me/read", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ seq: last, user: user }),
    credentials: "same-origin",
    keepalive: true,  // sent from pagehide too: it outlives the page
  }).catch(() => null);
  // Offline, or the server failed: unless a newer mark is on its way, send this one (the newest by then) again,
  // less and less often, a few times at most.
  const failed = response === null || response.status >= 500;
  if (failed && readTimer === null && tries + 1 < READ_TRIES) {
    readTimer = setTimeout(() => sendRead(tries + 1), 2000 * 2 ** tries);
  }
}

function markRead() {
  // At most one request every two seconds, whatever the rate of updates.
  if (mayMarkRead && readTimer === null) readTimer = setTimeout(() => sendRead(), 2000);
}

function notificationsOn() {
  return "Notification" in window && Notification.permission === "granted" && localStorage.getItem(NOTIFY) === "on";
}

function notify(update) {
  if (!notificationsOn() || live.anyVisible()) return;
  const note = new Notification(update.title, { body: update.text, tag: "gossip-" + update.seq });
  note.addEventListener("click", () => {
    window.focus();
    if (!list) location.assign("/notifications");
    note.close();
  });
}

const handlers = {
  update(update, fromNetwork) {
    if (update.seq <= last) return;  // replayed after a takeover, or already listed when the page was made
    last = update.seq;
    const followed = heard(update.show, update.personal === true);
    const news = followed && update.author !== user && update.seq > lastRead;
    const shown = list !== null && (need === "all" || followed);
    if (shown) {
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
      list.prepend(item(update, news));
    }
    if (shown && visible()) markRead();
    else if (news) setUnread(unread + 1);
    if (news && fromNetwork) notify(update);  // one tab per browser receives from the network
  },
  follows(data) {
    follows = new Set(data.follows);
    document.querySelectorAll("#shows li[data-show]").forEach(showFollowed);
    showFollowing();
    showUnheard();
  },
  // The count comes with the `read` event that follows: only what is listed changes here, and the Preferences page's
  // form (static/preferences.js) hears of it.
  preferences(data) {
    muted = new Set(Object.keys(data.shows).filter((slug) => data.shows[slug] === "muted"));
    showFollowing();
    showUnheard();
    document.dispatchEvent(new CustomEvent("gossip:preferences", { detail: data }));
  },
  edit(data) {
    const li = listed(data.seq);
    if (li) showAsNow(li, data);
  },
  retract(data) {
    const li = listed(data.seq);
    if (li) li.remove();
  },
  read(data) {
    lastRead = data.last_read_seq;
    setUnread(data.unread);
  },
  resync(data) {
    const notice = document.getElementById("resync");
    const history = element("a", "", "see them in the history");
    history.href = (need === "all" ? "/notifications/all" : "/notifications") + "?before=" + (data.resume + 1);
    const skipped = data.missed === null
      ? "Older updates were skipped, and some of them are no longer kept: "
      : counted(data.missed) + " older update" + (data.missed === 1 ? " was" : "s were") + " skipped: ";
    notice.replaceChildren(skipped, history, ".");
    notice.hidden = false;
  },
};

const live = connect({
  user: user,
  need: need,
  after: last,
  read: lastRead,
  onEvent: (type, data, fromNetwork) => handlers[type] && handlers[type](data, fromNetwork),
  onStatus: setStatus,
});

const notifyButton = document.getElementById("notify");
if (notifyButton && "Notification" in window) {
  const note = document.getElementById("notify-note");
  const refused = {
    denied: "Notifications are blocked in this browser's settings.",
    default: "Notifications were not allowed: turn them on again and allow them when the browser asks.",
  };
  const label = (permission) => {
    const blocked = Notification.permission === "denied";  // only the browser's settings can undo it: no button
    notifyButton.disabled = blocked;
    notifyButton.textContent = blocked ? "Desktop notifications blocked"
      : notificationsOn() ? "Turn off desktop notifications" : "Turn on desktop notifications";
    note.textContent = refused[permission] || "";
    note.hidden = !note.textContent;
  };
  notifyButton.addEventListener("click", async () => {
    if (notificationsOn()) {
      localStorage.removeItem(NOTIFY);
      return label("");
    }
    const permission = await Notification.requestPermission();
    if (permission === "granted") localStorage.setItem(NOTIFY, "on");
    label(permission);
  });
  label(Notification.permission === "denied" ? "denied" : "");  // "default" is news only once asked
  notifyButton.hidden = false;
}

// What the page lists is marked read only once someone can see it; a mark still waiting goes as the page is left,
// since what was on screen was seen.
if (list) document.addEventListener("visibilitychange", () => visible() && markRead());
if (list) window.addEventListener("pagehide", () => readTimer !== null && sendRead());
if (!mayMarkRead) {
  const acted = () => {
    mayMarkRead = true;
    markRead();
  };
  for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, acted, { once: true });
}
