// Formatting shared by the pages.
import { Json, num } from "./api";

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") element.className = value;
    else element.setAttribute(key, value);
  }
  for (const child of children) element.append(child);
  return element;
}

export function fmtNumber(value: number, digits = 4): string {
  if (!Number.isFinite(value)) return Number.isNaN(value) ? "—" : String(value);
  if (value !== 0 && (Math.abs(value) >= 1e5 || Math.abs(value) < 1e-3)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

// Digits grouped by hand: `toLocaleString("en-US")` makes a formatter at each call (70 µs here)
// and even a kept Intl.NumberFormat takes tens of µs, for a dozen figures at each event.
export function fmtInt(value: number): string {
  const rounded = Math.round(value);
  if (!Number.isFinite(rounded)) return rounded.toLocaleString("en-US");
  return String(rounded).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function fmtDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.floor(seconds % 60)} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

const STATE_CLASS: Record<string, string> = {
  RUNNING: "running",
  COMPLETED: "completed",
  STOPPED: "stopped",
  FAILED: "failed",
  PENDING: "pending",
  PAUSED: "paused",
  READY: "ready",
  DONE: "completed",
};

/** "STUDY_RUNNING" -> a badge reading "running". */
export function badge(state: string | undefined): HTMLElement {
  const short = (state ?? "UNSPECIFIED").replace(/^(STUDY|TRIAL|STAGE)_/, "");
  return h("span", { class: `badge ${STATE_CLASS[short] ?? "pending"}` }, short.toLowerCase());
}

export function progressBar(fraction: number): HTMLElement {
  const bar = h("div", { class: "progress", title: `${(fraction * 100).toFixed(1)} %` });
  const fill = h("div", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  bar.append(fill);
  return bar;
}

/** A parameter value for a table cell: scalars as they are, sequences summarised. */
export function fmtParameter(value: Json | undefined): string {
  if (!value) return "";
  if (value.scalar !== undefined) {
    return typeof value.scalar === "number" ? fmtNumber(value.scalar) : String(value.scalar);
  }
  const segments: Json[] = value.segments ?? [];
  if (segments.length === 0) return "";
  const first = segmentValue(segments[0], num(segments[0].start));
  const last = segments[segments.length - 1];
  const end = segmentValue(last, num(last.end) - 1);
  return `${fmtNumber(first, 3)} → ${fmtNumber(end, 3)} (${segments.length} seg)`;
}

/** A schedule segment's value at `step` (hippo.v1.Segment). */
export function segmentValue(segment: Json, step: number): number {
  if (segment.constant !== undefined) return num(segment.constant);
  if (segment.linear) {
    const f = segment.linear;
    const span = num(f.span);
    return span === 0 ? num(f.from) : num(f.from) + ((num(f.to) - num(f.from)) * (step - num(f.origin))) / span;
  }
  if (segment.exponential) {
    const f = segment.exponential;
    return num(f.initial) * Math.pow(num(f.rate), step - num(f.origin));
  }
  if (segment.cosine) {
    const f = segment.cosine;
    const period = num(f.period);
    if (period === 0) return num(f.max);
    return num(f.min) + ((num(f.max) - num(f.min)) * (1 + Math.cos((Math.PI * (step - num(f.origin))) / period))) / 2;
  }
  return 0; // a segment with no function is a constant 0 (proto3 default)
}

/** A performance mark set the first time a part of a page is shown (read by the benchmark). */
const marked = new Set<string>(); // asked at every event: a set, not a search of the entries
export function markOnce(name: string) {
  if (marked.has(name)) return;
  marked.add(name);
  if (performance.getEntriesByName(name, "mark").length === 0) performance.mark(name);
}
