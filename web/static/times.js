// Times on the reader's clock: the server writes UTC. feed.js also uses localTime for the updates it adds.
function localTime(time) {
  "use strict";
  time.textContent = new Date(time.dateTime).toLocaleString();
  return time;
}

document.querySelectorAll("time").forEach(localTime);
