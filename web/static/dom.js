// What the pages' scripts share: an element with its text set as text, never as HTML, and a call of the JSON API
// whose refusal is thrown with the API's own words.

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export async function call(method, path, body) {
  const options = { method: method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.ok) return response.status === 204 ? null : response.json();
  // The detail alone: the fields say it again, or give a rule the page shows under its field.
  const error = await response.json().catch(() => ({}));
  throw new Error(error.detail || response.statusText);
}
