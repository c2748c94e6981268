// A call handler's view: who replayed or downloaded the calls they took, newest first,
// paged back in time with the API's cursor. Purposes are shown as words.
import { api, el, guard, say, when } from "./common.js";

const table = document.getElementById("accesses");
const rows = table?.querySelector("tbody");
const empty = document.getElementById("empty");
const more = document.getElementById("more");
let cursor = null;

function row(access) {
  return el("tr", {},
    el("td", {}, when(access.occurred_at)),
    el("td", {}, access.actor),
    el("td", {}, access.kind),
    el("td", {}, access.purpose ? access.purpose.replaceAll("_", " ") : "–"),
    el("td", {}, when(access.call_started_at)),
    el("td", {}, access.recording_id));
}

async function show(append) {
  const params = new URLSearchParams();
  if (append && cursor !== null) params.set("cursor", cursor);
  const answer = await api(`/me/accesses?${params}`);
  rows.append(...answer.accesses.map(row));
  cursor = answer.next_cursor;
  table.hidden = rows.children.length === 0;
  empty.hidden = rows.children.length !== 0;
  more.hidden = cursor === null;
  const shown = rows.children.length;
  say(`${shown} ${shown === 1 ? "access" : "accesses"} shown`);
}

if (table) {
  show(false).catch((error) => say(error.message, { error: true }));
  more.addEventListener("click", guard(() => show(true)));
}
