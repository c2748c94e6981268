// The audit view: the trail filtered by recording, actor and action, newest first, paged
// back in time with the API's own cursor for that order.
import { api, el, fields, guard, say, when } from "./common.js";

const form = document.getElementById("filters");
const table = document.getElementById("events");
const rows = table?.querySelector("tbody");
const empty = document.getElementById("empty");
const more = document.getElementById("more");
let before = null;
let filters = {};

function detail(event) {
  const shown = { ...event.details };
  if (event.purpose) shown.purpose = event.purpose;
  return Object.entries(shown)
    .map(([name, value]) => `${name}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join("; ");
}

function row(event) {
  return el("tr", { class: event.outcome === "allow" ? undefined : event.outcome },
    el("td", {}, event.seq),
    el("td", {}, when(event.occurred_at)),
    el("td", {}, event.actor),
    el("td", {}, event.action),
    el("td", {}, event.outcome),
    el("td", {}, event.recording_id ?? "–"),
    el("td", { class: "details" }, detail(event)));
}

async function show(append) {
  const params = new URLSearchParams({ ...filters, order: "newest" });
  if (append && before !== null) params.set("before", before);
  const answer = await api(`/audit?${params}`);
  if (!append) rows.replaceChildren();
  rows.append(...answer.events.map(row));
  before = answer.next_before;
  table.hidden = rows.children.length === 0;
  empty.hidden = rows.children.length !== 0;
  more.hidden = before === null;
  say(`${rows.children.length} events shown`);
}

form?.addEventListener("submit", guard(async () => {
  filters = fields(form);
  await show(false);
}));
const wanted = new URLSearchParams(window.location.search).get("recording");
if (form && wanted) {
  form.elements.recording.value = wanted;
  filters = { recording: wanted };
  show(false).catch((error) => say(error.message, { error: true }));
}
more?.addEventListener("click", guard(() => show(true)));
