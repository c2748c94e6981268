// The player: a native <audio> element driven by a waveform drawn from the peaks.
// Click or drag the waveform to seek (the browser fetches that part with a Range
// request), skip ±10 s, change speed, listen to one channel of a two-channel call.
// A time axis runs under the waveform and each lane is labelled; a lane not heard is dimmed.
import { clock, el } from "./common.js";

const SKIP_S = 10;
// Tick spacings a person reads easily, from a few seconds' call to a long one.
const TICK_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
const TICK_MIN_PX = 100;
// Which side of the call each channel holds is not recorded anywhere: the PBX or the
// provider decides. The lanes are named by channel, and by side of the stereo file.
const LANE_NAMES = { 1: ["Mono: both sides of the call"], 2: ["Channel 1 (left)", "Channel 2 (right)"] };
const DIMMED = 0.25;

// Seconds between ticks so that at most one tick falls in each TICK_MIN_PX of width.
export function tickStep(durationS, widthPx) {
  const most = Math.max(2, Math.floor(widthPx / TICK_MIN_PX));
  return TICK_STEPS_S.find((step) => durationS / step <= most) ?? Math.ceil(durationS / most / 3600) * 3600;
}

export class Player {
  constructor({ audio, canvas, play, back, forward, speed, channel, elapsed, lanes, axis }) {
    Object.assign(this, { audio, canvas, playButton: play, speed, channel, elapsed, lanes, axis });
    this.peaks = null;
    this.heard = "both";
    this.axisFor = null;
    this.hintDuration = 0;
    this.graph = null;
    play.addEventListener("click", () => this.toggle());
    back.addEventListener("click", () => this.skip(-SKIP_S));
    forward.addEventListener("click", () => this.skip(SKIP_S));
    speed.addEventListener("change", () => { audio.playbackRate = Number(speed.value); });
    channel.addEventListener("change", () => this.route(channel.value));
    for (const name of ["timeupdate", "durationchange", "seeked", "play", "pause", "ended"]) {
      audio.addEventListener(name, () => this.paint());
    }
    this.bindWaveform();
    this.bindKeys();
    // A narrower window fits fewer ticks.
    window.addEventListener("resize", () => { this.axisFor = null; this.paint(); });
  }

  load(url, { durationS, channels, peaks }) {
    this.hintDuration = durationS || 0;
    this.peaks = peaks;
    this.channel.disabled = channels !== 2;
    this.audio.src = url;
    this.label(peaks?.length || channels || 1);
    this.paint();
  }

  label(count) {
    const names = LANE_NAMES[count] ?? Array.from({ length: count }, (_, n) => `Channel ${n + 1}`);
    this.lanes.replaceChildren(...names.map((name, index) => el("li", { "data-lane": index, "data-name": name }, el("span", {}, name))));
    this.markHeard();
  }

  markHeard() {
    for (const lane of this.lanes.children) {
      const muted = this.heard !== "both" && lane.dataset.lane !== this.heard;
      lane.classList.toggle("muted", muted);
      lane.firstChild.textContent = muted ? `${lane.dataset.name} · not heard` : lane.dataset.name;
    }
  }

  ticks(duration) {
    // Drawn again only when the length is known better (the element's own duration).
    const key = Math.round(duration * 10);
    if (this.axisFor === key || !duration) return;
    this.axisFor = key;
    const step = tickStep(duration, this.canvas.clientWidth || this.canvas.width);
    const marks = [];
    // No tick so near the end that its label would run off the waveform.
    for (let at = 0; at < duration * 0.96; at += step) {
      marks.push(el("li", { "data-at": at }, clock(at)));
    }
    this.axis.replaceChildren(...marks);
    for (const mark of marks) mark.style.left = `${(Number(mark.dataset.at) / duration) * 100}%`;
  }

  get duration() {
    const known = this.audio.duration;
    return Number.isFinite(known) && known > 0 ? known : this.hintDuration;
  }

  async toggle() {
    if (this.audio.paused) await this.audio.play();
    else this.audio.pause();
  }

  skip(seconds) {
    this.seekTo(this.audio.currentTime + seconds);
  }

  seekTo(seconds) {
    const end = this.duration;
    this.audio.currentTime = Math.max(0, end ? Math.min(seconds, end - 0.05) : seconds);
    this.paint();
  }

  seekToFraction(fraction) {
    this.seekTo(Math.min(1, Math.max(0, fraction)) * this.duration);
  }

  route(choice) {
    // The element's sound goes through Web Audio only once a channel is chosen.
    if (!this.graph) {
      const context = new AudioContext();
      const source = context.createMediaElementSource(this.audio);
      const splitter = context.createChannelSplitter(2);
      const merger = context.createChannelMerger(2);
      this.graph = { context, source, splitter, merger };
    }
    const { context, source, splitter, merger } = this.graph;
    source.disconnect();
    splitter.disconnect();
    merger.disconnect();
    if (choice === "both") {
      source.connect(context.destination);
    } else {
      const index = Number(choice);
      source.connect(splitter);
      splitter.connect(merger, index, 0);
      splitter.connect(merger, index, 1);
      merger.connect(context.destination);
    }
    context.resume();
    // What is routed, for whoever inspects the page (and its tests).
    this.audio.dataset.heard = choice;
    this.heard = choice;
    this.markHeard();
    this.paint();
  }

  bindWaveform() {
    const fractionAt = (event) => {
      const box = this.canvas.getBoundingClientRect();
      return (event.clientX - box.left) / box.width;
    };
    let dragging = false;
    this.canvas.addEventListener("pointerdown", (event) => {
      dragging = true;
      this.canvas.setPointerCapture(event.pointerId);
      this.seekToFraction(fractionAt(event));
    });
    this.canvas.addEventListener("pointermove", (event) => {
      if (dragging) this.seekToFraction(fractionAt(event));
    });
    this.canvas.addEventListener("pointerup", () => { dragging = false; });
    this.canvas.addEventListener("keydown", (event) => {
      if (event.key === "Home") this.seekTo(0);
      else if (event.key === "End") this.seekTo(this.duration);
      else return;
      event.preventDefault();
    });
  }

  bindKeys() {
    document.addEventListener("keydown", (event) => {
      const typing = event.target.closest?.("input, textarea, select, button");
      if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
      const actions = {
        " ": () => this.toggle(), k: () => this.toggle(),
        j: () => this.skip(-SKIP_S), ArrowLeft: () => this.skip(-SKIP_S),
        l: () => this.skip(SKIP_S), ArrowRight: () => this.skip(SKIP_S),
      };
      const action = actions[event.key];
      if (!action || !this.audio.src) return;
      event.preventDefault();
      action();
    });
  }

  paint() {
    const now = this.audio.currentTime;
    const end = this.duration;
    this.playButton.textContent = this.audio.paused ? "Play" : "Pause";
    this.elapsed.value = `${clock(now)} / ${clock(end)}`;
    const percent = end ? Math.round((now / end) * 100) : 0;
    this.canvas.setAttribute("aria-valuenow", String(percent));
    this.canvas.setAttribute("aria-valuetext", `${clock(now)} of ${clock(end)}`);
    this.ticks(end);
    this.draw(end ? now / end : 0);
  }

  draw(progress) {
    const { canvas } = this;
    const context = canvas.getContext("2d");
    const { width, height } = canvas;
    context.clearRect(0, 0, width, height);
    const played = Math.round(progress * width);
    const lanes = this.peaks?.length || 1;
    const laneHeight = height / lanes;
    for (let lane = 0; lane < lanes; lane += 1) {
      const middle = laneHeight * lane + laneHeight / 2;
      const peaks = this.peaks?.[lane];
      const buckets = peaks ? peaks.min.length : 0;
      context.globalAlpha = this.heard === "both" || Number(this.heard) === lane ? 1 : DIMMED;
      for (let x = 0; x < width; x += 1) {
        let low = 0;
        let high = 0;
        if (buckets) {
          const from = Math.floor((x / width) * buckets);
          const to = Math.max(from + 1, Math.floor(((x + 1) / width) * buckets));
          low = Math.min(...peaks.min.slice(from, to));
          high = Math.max(...peaks.max.slice(from, to));
        }
        context.fillStyle = x < played ? "#1d4f91" : "#8a98ab";
        const top = middle - (high / 127) * (laneHeight / 2 - 2);
        const bottom = middle - (low / 127) * (laneHeight / 2 - 2);
        context.fillRect(x, top, 1, Math.max(1, bottom - top));
      }
    }
    context.globalAlpha = 1;
    context.fillStyle = "#b00020";
    context.fillRect(Math.min(played, width - 2), 0, 2, height);
  }
}
