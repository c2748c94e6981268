// The retention view: last and next sweep, what is due and overdue, holds, attestation.
import { api, el, guard, say, when } from "./common.js";

const facts = document.getElementById("retention");
const held = document.getElementById("held");

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
  );
  const kinds = Object.entries(status.holds.by_kind ?? {});
  held.replaceChildren(...(kinds.length
    ? kinds.map(([kind, count]) => el("li", {}, `${kind.replaceAll("_", " ")}: ${count}`))
    : [el("li", {}, "None")]));
  say("Retention status loaded");
})();
