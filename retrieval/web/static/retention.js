// The retention view: last and next sweep, what is due and overdue, holds, attestation;
// for a retention operator, the provider fetches given up.
import { api, can, el, guard, say, when } from "./common.js";

const facts = document.getElementById("retention");
const held = document.getElementById("held");
const dead = document.getElementById("dead");
const deadCount = document.getElementById("dead-count");

function letter(job) {
  return el("tr", {},
    el("td", {}, when(job.given_up_at)),
    el("td", {}, job.provider),
    el("td", {}, job.id),
    el("td", {}, job.attempts),
    el("td", { class: "details" }, job.error ?? "–"),
    el("td", {}, el("code", {}, job.job)));
}

async function showDeadLetters() {
  const answer = await api("/fetches/dead");
  const shown = answer.jobs.length;
  deadCount.textContent = answer.count === 0
    ? "None: every recording a provider announced has been fetched or is on its way."
    : `${answer.count} ${answer.count === 1 ? "recording was" : "recordings were"} not fetched`
      + (shown < answer.count ? ` (the newest ${shown} shown)` : "") + ".";
  deadCount.classList.toggle("error", answer.count > 0);
  dead.querySelector("tbody").replaceChildren(...answer.jobs.map(letter));
  dead.hidden = shown === 0;
}

function fact(label, value) {
  return [el("dt", {}, label), el("dd", {}, value ?? "–")];
}

guard(async () => {
  const status = await api("/retention");
  const sweep = status.last_sweep;
  facts.replaceChildren(
    ...fact("Retention period", `${status.retention_period_days} days`),
    ...fact("Last sweep", sweep ? `${when(sweep.at)}: ${sweep.deleted ?? 0} deleted` : "not yet"),
    ...fact("Next sweep", when(status.next_sweep)),
    ...fact("Due before the next sweep", status.due_before_next_sweep),
    ...fact("Overdue (must be 0)", status.overdue),
    ...fact("Stored / being deleted / deleted",
      `${status.recordings.stored} / ${status.recordings.deleting} / ${status.recordings.deleted}`),
    ...fact("Recordings held", status.holds.recordings_held),
    ...fact("Held past their deadline", status.holds.held_past_deadline),
    ...fact("Last attestation", when(status.last_attestation)),
    ...fact("Calls without a referral awaiting their team's triage", status.triage
      ? `${status.triage.awaiting} (listed ${status.triage.review_after_days} days after the call)`
      : null),
  );
  const kinds = Object.entries(status.holds.by_kind ?? {});
  held.replaceChildren(...(kinds.length
    ? kinds.map(([kind, count]) => el("li", {}, `${kind.replaceAll("_", " ")}: ${count}`))
    : [el("li", {}, "None")]));
  if (dead && can("fetches")) await showDeadLetters();
  say("Retention status loaded");
})();
