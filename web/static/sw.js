// Gossip's service worker, served at /sw.js so that its scope is the whole site. It shows the notification a push
// carries (services/auth/push.py writes the payload), and a click on one focuses an open Gossip tab, or opens the
// notifications page.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function readPayload(event) {
  if (!event.data) return null;
  try {
    return event.data.json();
  } catch (error) {
    return null;
  }
}

self.addEventListener("push", (event) => {
  const push = readPayload(event);
  const heading = push && typeof push.heading === "string" ? push.heading : "New updates on Gossip";
  const options = {
    body: push && typeof push.text === "string" ? push.text : "",
    // One notification per show: a newer push for the same show replaces the one before.
    tag: push && typeof push.show === "string" ? "gossip-" + push.show : "gossip",
    renotify: true,
    data: { url: push && typeof push.url === "string" && push.url.startsWith("/") ? push.url : "/notifications" },
  };
  event.waitUntil(self.registration.showNotification(heading, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL(event.notification.data.url, self.location.origin).href;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((tabs) => {
      const own = tabs.filter((tab) => new URL(tab.url).origin === self.location.origin);
      const open = own.find((tab) => tab.url === target) || own[0];
      if (open) return open.focus();
      return self.clients.openWindow(target);
    }),
  );
});
