// Shared by every page: the API with the session cookie and CSRF token, safe DOM building
// (text only, never HTML from data), and the status line for screen readers.

const page = document.body.dataset;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function can(ability) {
  return page[`can${ability[0].toUpperCase()}${ability.slice(1)}`] === "yes";
}

export async function api(path, { method = "GET", json } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = page.csrf;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  if (response.status === 401) {
    window.location.assign("/sign-in");
    throw new ApiError(401, "signed out");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.detail || response.statusText);
  return data;
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function say(message, { error = false } = {}) {
  const status = document.getElementById("status");
  status.textContent = message;
  status.classList.toggle("error", error);
}

export function when(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

export function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

// A hold's review_by given as a date is stored as the first moment after that day (UTC);
// it is shown as the date that was given, not as midnight of the day after.
export function holdDate(iso) {
  const moment = new Date(iso);
  if (moment.getUTCHours() || moment.getUTCMinutes() || moment.getUTCSeconds() || moment.getUTCMilliseconds()) {
    return when(iso);
  }
  const day = new Date(moment.getTime() - 86400000);
  return day.toLocaleDateString("en-GB", { dateStyle: "medium", timeZone: "UTC" });
}

// When a recording goes: a hold in force keeps it past its deadline until the hold's
// review date (the API lists only holds in force); null when no hold keeps it longer.
export function heldUntil(recording) {
  const ends = recording.holds.map((hold) => hold.review_by).filter(Boolean).sort();
  const last = ends[ends.length - 1];
  if (!last || new Date(last) < new Date(recording.retention_deadline)) return null;
  return `kept under hold until ${holdDate(last)}, then deleted`;
}

// Audio that did not arrive whole (cut short, damaged, gaps), in a few words; null if whole.
export function incomplete(audio) {
  if (audio.complete) return null;
  const declared = audio.declared_duration_s;
  return declared && declared > audio.duration_s
    ? `incomplete: ${clock(audio.duration_s)} of ${clock(declared)}`
    : "incomplete audio";
}

export function daysUntil(iso, now = Date.now()) {
  return Math.floor((new Date(iso).getTime() - now) / 86400000);
}

export function fields(form) {
  const found = {};
  for (const [name, value] of new FormData(form).entries()) {
    if (String(value).trim() !== "") found[name] = String(value).trim();
  }
  return found;
}

// The API's reason rule, as the field carries it (rendered from retrieval.grants): the
// length once runs of whitespace are one space, and different words of two letters or more
// (Python's [^\W\d_]{2,}: letters, and numerals that are not decimal digits).
const WORD = /[\p{L}\p{Nl}\p{No}]{2,}/gu;

export function reasonProblem(field) {
  const rule = field.dataset;
  const text = field.value.split(/\s+/).filter(Boolean).join(" ");
  if (text.length < field.minLength || text.length > field.maxLength) return rule.lengthRule;
  const words = new Set(text.toLowerCase().match(WORD) ?? []);
  return words.size < Number(rule.words) ? rule.wordsRule : null;
}

// A message beside the field it is about (aria-describedby), or none.
export function fieldError(field, message) {
  const note = document.getElementById(field.getAttribute("aria-describedby"));
  note.textContent = message ?? "";
  note.hidden = !message;
  if (message) field.setAttribute("aria-invalid", "true");
  else field.removeAttribute("aria-invalid");
}

export function guard(work) {
  return async (event) => {
    event?.preventDefault?.();
    try {
      await work(event);
    } catch (error) {
      say(error.message || "Something went wrong", { error: true });
    }
  };
}
