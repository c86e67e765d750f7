// The Preferences page: a time zone never chosen is filled in with this browser's own (the server cannot know it);
// one chosen already is kept, and the browser's is offered beside it when it differs. Saving is the form's post.
(function () {
  "use strict";
  const zone = document.querySelector('#preferences input[name="time_zone"]');
  const said = document.getElementById("browser-zone");
  const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone || !said || !browser) return;
  if (zone.hasAttribute("data-from-browser")) {
    zone.value = browser;
    said.textContent = `Filled in from this browser (${browser}): save to keep it.`;
  } else if (zone.value !== browser) {
    const use = document.createElement("button");
    use.type = "button";
    use.className = "secondary";
    use.textContent = `Use this browser's: ${browser}`;
    use.addEventListener("click", () => {
      zone.value = browser;
      use.remove();
    });
    said.replaceChildren(use);
  }
})();
