// Messages come from the server's catalogue (masking/i18n, domains `console` and `common`), as JSON
// in the page; ids are the English text, so a missing translation shows English.
const data = JSON.parse(document.getElementById("console-data").textContent);

export const lang = data.lang;

/** The message `id` in the page's language, with `{name}` placeholders filled from `params`. */
export function t(id, params = {}) {
  let text = Object.prototype.hasOwnProperty.call(data.messages, id) ? data.messages[id] : id;
  for (const [key, value] of Object.entries(params)) text = text.replaceAll(`{${key}}`, String(value));
  return text;
}
