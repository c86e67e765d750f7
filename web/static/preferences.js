// The Preferences page: a time zone never chosen is filled in with this browser's own (the server cannot know it);
// one chosen already is kept, and the browser's is offered beside it when it differs. Preferences saved in another
// tab or device reach the form (static/feed.js tells of them), except in the fields changed here and not yet saved,
// so that saving this form does not undo what was saved there. Saving is the form's post.
(function () {
  "use strict";
  const form = document.getElementById("preferences");
  const zone = form && form.elements.namedItem("time_zone");
  const said = document.getElementById("browser-zone");
  const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!form) return;
  const changedHere = new Set();
  form.addEventListener("change", (event) => changedHere.add(event.target.name));

  function offerBrowserZone() {
    if (!browser || !zone || !said) return;
    if (zone.hasAttribute("data-from-browser")) {
      zone.value = browser;
      changedHere.add("time_zone");
      said.textContent = `Filled in from this browser (${browser}): save to keep it.`;
    } else if (zone.value !== browser) {
      const use = document.createElement("button");
      use.type = "button";
      use.className = "secondary";
      use.textContent = `Use this browser's: ${browser}`;
      use.addEventListener("click", () => {
        zone.value = browser;
        changedHere.add("time_zone");
        use.remove();
      });
      said.replaceChildren(use);
    }
  }

  function show(name, value) {
    const field = form.elements.namedItem(name);
    if (!field || changedHere.has(name)) return;
    if (field.type === "checkbox") field.checked = value;
    else field.value = value;
  }

  document.addEventListener("gossip:preferences", (event) => {
    const saved = event.detail;
    form.querySelectorAll("select[data-show]").forEach((select) => {
      show(select.name, saved.shows[select.dataset.show] || "live");
    });
    show("time_zone", saved.time_zone);
    show("quiet_hours", saved.quiet_hours !== null);
    if (saved.quiet_hours !== null) {
      show("quiet_hours.start", saved.quiet_hours.start);
      show("quiet_hours.end", saved.quiet_hours.end);
    }
    show("digest_hour", String(saved.digest_hour));
  });
  offerBrowserZone();
})();
