// The home page's API tokens: listed (with when each expires and was last used), created and revoked through the
// JSON API. Names and tokens are only ever set as textContent; a new token is shown once, since only its hash is
// kept. Each attempt replaces the outcome of the one before: a token shown, or an error.
import { call, element } from "./dom.js";

(function () {
  "use strict";
  const list = document.getElementById("token-list");
  const form = document.getElementById("token-form");
  const fresh = document.getElementById("token-new");
  const value = document.getElementById("token-value");
  const problem = document.getElementById("token-error");

  function clear() {
    fresh.hidden = true;
    value.textContent = "";
    problem.hidden = true;
  }

  function showError(error) {
    problem.textContent = error.message;
    problem.hidden = false;
  }

  function row(token) {
    const li = element("li");
    li.dataset.token = token.name;
    const revoke = element("button", "secondary", "Revoke");
    revoke.type = "button";
    revoke.addEventListener("click", () => {
      clear();
      call("DELETE", "/api/me/tokens/" + encodeURIComponent(token.name)).then(refresh, showError);
    });
    li.append(element("span", "title", token.name), element("span", "status", facts(token)), revoke);
    return li;
  }

  function facts(token) {
    const day = (moment) => moment.slice(0, 10);
    const ends = token.expires_at === null ? "never expires"
      : (Date.parse(token.expires_at) <= Date.now() ? "expired " : "expires ") + day(token.expires_at);
    const used = token.last_used_at === null ? "never used" : "last used " + day(token.last_used_at);
    return "created " + day(token.created_at) + " · " + ends + " · " + used;
  }

  async function refresh() {
    const tokens = await call("GET", "/api/me/tokens");
    list.replaceChildren(...tokens.map(row));
    if (tokens.length === 0) list.append(element("li", "status", "No tokens yet."));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clear();
    const request = { name: form.elements.name.value };
    const days = form.elements.expires_in_days.value;
    if (days !== "") request.expires_in_days = Number(days);
    call("POST", "/api/me/tokens", request).then((created) => {
      value.textContent = created.token;
      fresh.hidden = false;
      form.reset();
      return refresh();
    }, showError);
  });

  refresh().catch(showError);
})();
