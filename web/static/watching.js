// The Shows page's "N watching": one request for every show's count, every few seconds, while the page is shown.
"use strict";

(() => {
  const EVERY = 3000;

  function show(counts) {
    for (const item of document.querySelectorAll("#shows li[data-show]")) {
      const count = counts.get(item.dataset.show);
      const label = item.querySelector(".watching");
      if (label && count !== undefined) {
        label.dataset.watching = String(count);
        label.textContent = `${count} watching`;
      }
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/api/shows", { headers: { Accept: "application/json" } });
      if (response.ok) {
        show(new Map((await response.json()).map((item) => [item.slug, item.watching])));
      }
    } catch {
      // offline for a moment: the next round tries again
    }
  }

  setInterval(() => {
    if (document.visibilityState === "visible") {
      refresh();
    }
  }, EVERY);
})();
