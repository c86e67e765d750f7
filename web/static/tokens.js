// The home page's API tokens: listed, created and revoked through the JSON API. Names and tokens are only ever
// set as textContent; a new token is shown once, since only its hash is kept.
(function () {
  "use strict";
  const list = document.getElementById("token-list");
  const form = document.getElementById("token-form");
  const fresh = document.getElementById("token-new");
  const problem = document.getElementById("token-error");

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function call(method, path, body) {
    const options = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      options.headers["content-type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    if (response.ok) return response.status === 204 ? null : response.json();
    const error = await response.json().catch(() => ({}));
    const fields = Object.values(error.fields || {}).join("; ");
    throw new Error((error.detail || response.statusText) + (fields ? " (" + fields + ")" : ""));
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
      fresh.hidden = true;  // it may be the token just revoked
      call("DELETE", "/api/me/tokens/" + encodeURIComponent(token.name)).then(refresh, showError);
    });
    li.append(element("span", "title", token.name + " · created " + token.created_at.slice(0, 10)), revoke);
    return li;
  }

  async function refresh() {
    problem.hidden = true;
    const tokens = await call("GET", "/api/me/tokens");
    list.replaceChildren(...tokens.map(row));
    if (tokens.length === 0) list.append(element("li", "status", "No tokens yet."));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = form.elements.name.value;
    call("POST", "/api/me/tokens", { name: name }).then((created) => {
      document.getElementById("token-value").textContent = created.token;
      fresh.hidden = false;
      form.reset();
      return refresh();
    }, showError);
  });

  refresh().catch(showError);
})();
