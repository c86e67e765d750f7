// The Preferences page's push section: "Turn on push" asks for the notification permission, registers the service
// worker (/sw.js, scope "/"), subscribes this browser with the server's VAPID key and registers the subscription
// (POST /api/me/push). It lists every device with push on, with a Remove button each. A browser that blocked
// notifications, or cannot take push at all, is told so in words.
import { call, element } from "./dom.js";

(function () {
  "use strict";
  const button = document.getElementById("push-on");
  const status = document.getElementById("push-status");
  const list = document.getElementById("push-devices");
  const unreached = document.getElementById("push-unreached");
  const OWN = "gossip.push.device"; // this browser's device id, so that removing it also unsubscribes here
  const BLOCKED = "Notifications are blocked for this site in your browser. Allow them in the site settings " +
    "(the icon left of the address), then press Turn on push again.";
  if (!button || !status || !list) return;

  function say(text) {
    status.textContent = text;
    status.hidden = !text;
  }

  function keyBytes(key) {
    const base64 = (key + "=".repeat((4 - (key.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  }

  const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

  function register() {
    return navigator.serviceWorker.register("/sw.js", { scope: "/" }).then(() => navigator.serviceWorker.ready);
  }

  async function subscribe(registration) {
    const key = keyBytes((await call("GET", "/api/push/key")).key);
    const options = { userVisibleOnly: true, applicationServerKey: key };
    try {
      return await registration.pushManager.subscribe(options);
    } catch (error) {
      // One made with another key (the server's key changed): it has to go before a new one can be made.
      const old = await registration.pushManager.getSubscription();
      if (!old) throw error;
      await old.unsubscribe();
      return registration.pushManager.subscribe(options);
    }
  }

  async function turnOn() {
    say("");
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      say(permission === "denied" ? BLOCKED : "Push stays off: notifications were not allowed.");
      return;
    }
    const registration = await register();
    const subscription = await subscribe(registration);
    const added = await call("POST", "/api/me/push", subscription.toJSON());
    localStorage.setItem(OWN, added.id);
    say("Push is on for this browser.");
    await refresh();
  }

  async function remove(device) {
    await call("DELETE", "/api/me/push/" + encodeURIComponent(device.id));
    if (localStorage.getItem(OWN) === device.id) {
      localStorage.removeItem(OWN);
      const registration = supported ? await navigator.serviceWorker.getRegistration("/") : null;
      const subscription = registration ? await registration.pushManager.getSubscription() : null;
      if (subscription) await subscription.unsubscribe();
    }
    await refresh();
  }

  function row(device) {
    const li = element("li");
    li.dataset.device = device.id;
    const own = localStorage.getItem(OWN) === device.id ? " (this browser)" : "";
    li.append(element("span", "title", device.name + own + " · added " + device.added_at.slice(0, 10)));
    const button = element("button", "secondary", "Remove");
    button.type = "button";
    button.addEventListener("click", () => remove(device).catch((error) => say(error.message)));
    li.append(button);
    return li;
  }

  async function refresh() {
    const devices = await call("GET", "/api/me/push");
    list.replaceChildren(...devices.map(row));
    if (devices.length === 0) list.append(element("li", "status", "No device has push on yet."));
    // The levels as saved: the form posts the page again, which reads the devices again.
    const chosen = document.querySelector("#preferences select option[value=push][selected]");
    if (unreached) unreached.hidden = devices.length > 0 || chosen === null;
  }

  if (!supported) {
    button.disabled = true;
    say("This browser cannot receive push notifications.");
  } else if (Notification.permission === "denied") {
    say(BLOCKED);
  } else if (Notification.permission === "granted") {
    register().catch((error) => say(error.message)); // keeps the service worker current
  }
  button.addEventListener("click", () =>
    turnOn().catch((error) => say("Push could not be turned on: " + error.message)),
  );
  refresh().catch((error) => say(error.message));
})();
