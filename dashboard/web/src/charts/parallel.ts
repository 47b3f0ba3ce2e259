// Parallel coordinates (canvas): one vertical axis per parameter and one for the objective, a
// line per sampled trial coloured by its objective's rank (best ones bright, drawn last), the
// lines of the trials that stay in the sample kept from one drawing to the next.
import { Json, num, nums } from "../api";
import { fmtNumber } from "../format";
import { Surface } from "./surface";

// From pale blue (worst) to deep orange (best), in 256 steps made once: a line's colour is
// then a lookup, not a string made and parsed by the canvas for each of the thousand lines.
const STEPS = 255;
const COLORS = [...Array(STEPS + 1).keys()].map((k) => {
  const t = k / STEPS;
  const a = [165, 185, 230];
  const b = [232, 89, 12];
  const mix = a.map((v, i) => Math.round(v + (b[i] - v) * t));
  return `rgba(${mix[0]}, ${mix[1]}, ${mix[2]}, ${(0.25 + 0.6 * t).toFixed(3)})`;
});
const color = (t: number) => COLORS[Math.round(Math.max(0, Math.min(1, t)) * STEPS)];

// The lines of a sample's trials other than the leading ones, kept on a canvas of their own
// between drawings with the trials they show, and what they were drawn for (size, scales,
// colours' direction): the server's sample stays as the study grows (the leading trials and
// every stride-th trial number: dashboard/server/aggregates.cc), so a new sample draws only the
// lines of the trials that joined it onto the kept ones, then the leading trials' lines over
// them (their set changes often). Everything is drawn again when the scales or the size move
// or when many kept lines left the sample (the stride doubled): a running study's sample at
// every event cost its thousand lines rastered again, a tenth of a watching page's CPU.
type Kept = { canvas: OffscreenCanvas; context: OffscreenCanvasRenderingContext2D; key: string; trials: Set<number> };
const kept = new WeakMap<Surface, Kept>();
// The leading trials, drawn over the rest at every drawing (as many as the server ranks first).
const LEADING = 50;

/**
 * Draws the sample on `surface`, whose canvas's CSS size is `size` (the caller keeps it from a
 * ResizeObserver: reading it here, after the page changed the DOM, would force a layout).
 */
export function drawParallel(surface: Surface, sample: Json, metric: string, maximize: boolean, size: { width: number; height: number }) {
  const axes: Json[] = sample.axes ?? [];
  const values = nums(sample.values);
  const ids = nums(sample.trial_ids);
  const columns = axes.length + 1;
  const rows = columns > 0 ? Math.floor(values.length / columns) : 0;
  const { width, height } = size;
  if (width === 0 || height === 0) return;
  const ctx = surface.begin(width, height);
  try {
    drawChart(ctx, surface, axes, values, ids.length === rows ? ids : null, columns, rows, metric, maximize, size);
  } finally {
    surface.end();
  }
}

function drawChart(ctx: OffscreenCanvasRenderingContext2D, surface: Surface, axes: Json[], values: number[], ids: number[] | null, columns: number, rows: number, metric: string, maximize: boolean, { width, height }: { width: number; height: number }) {
  ctx.textAlign = "start"; // the last drawing's, kept with the canvas
  ctx.font = "11px system-ui, sans-serif";
  if (rows === 0) {
    kept.delete(surface);
    ctx.fillStyle = "#868e96";
    ctx.fillText("No completed trial yet.", 16, 24);
    return;
  }
  const top = 34, bottom = height - 22, left = 40, right = width - 40;
  const x = (i: number) => left + ((right - left) * i) / Math.max(1, columns - 1);
  // Each axis's scale: log where declared, categories evenly spaced.
  const ranges: { low: number; high: number; log: boolean }[] = axes.map((a) => ({
    low: num(a.low),
    high: num(a.high),
    log: !!a.log && num(a.low) > 0,
  }));
  let objLow = Infinity, objHigh = -Infinity;
  for (let r = 0; r < rows; r++) {
    const v = values[r * columns + columns - 1];
    if (Number.isFinite(v)) {
      objLow = Math.min(objLow, v);
      objHigh = Math.max(objHigh, v);
    }
  }
  ranges.push({ low: objLow, high: objHigh, log: false });
  const y = (c: number, v: number) => {
    const { low, high, log } = ranges[c];
    const t = log ? (Math.log(v) - Math.log(low)) / (Math.log(high) - Math.log(low) || 1) : (v - low) / (high - low || 1);
    return bottom - (bottom - top) * (Number.isFinite(t) ? t : 0.5);
  };
  // Coloured by rank, not by value: a skewed objective would otherwise paint most lines alike.
  const order = [...Array(rows).keys()].map((r) => {
    const v = values[r * columns + columns - 1];
    return { r, v: Number.isFinite(v) ? (maximize ? v : -v) : -Infinity, t: 0 };
  });
  order.sort((a, b) => a.v - b.v);
  // Cubed, so that only the leading trials stand out in orange.
  order.forEach((entry, i) => (entry.t = rows > 1 ? (i / (rows - 1)) ** 3 : 1));
  const lines = (target: OffscreenCanvasRenderingContext2D, entries: { r: number; t: number }[]) => {
    target.lineWidth = 1;
    // Lines of one colour in a row (ranked order: each colour's lines are consecutive) are
    // stroked as one path where a line is one device pixel wide: the canvas (Skia) draws such a
    // stroke as a hairline, segment by segment, so the pixels are those of one stroke per line
    // (the same, checked), for a fifth of the strokes (a third less time). Wider device pixels
    // (a pixel ratio over 1) stroke each line alone: a wider path would be filled as one shape.
    const together = (window.devicePixelRatio || 1) <= 1;
    let open: string | null = null;
    for (const { r, t } of entries) {
      const stroke = color(t);
      if (!together || stroke !== open) {
        if (open !== null) target.stroke();
        target.strokeStyle = stroke;
        target.beginPath();
        open = stroke;
      }
      for (let c = 0; c < columns; c++) {
        const v = values[r * columns + c];
        const py = Number.isFinite(v) ? y(c, v) : bottom;
        if (c === 0) target.moveTo(x(c), py);
        else target.lineTo(x(c), py);
      }
    }
    if (open !== null) target.stroke();
  };
  const leading = order.slice(Math.max(0, rows - LEADING));
  const rest = order.slice(0, Math.max(0, rows - LEADING));
  // The rest's lines: those not kept yet drawn onto the kept ones, or all again.
  const ratio = window.devicePixelRatio || 1;
  const key = JSON.stringify([width, height, ratio, columns, maximize, ranges.map(({ low, high, log }) => [low, high, log])]);
  let store = kept.get(surface);
  const w = ctx.canvas.width, h = ctx.canvas.height;
  if (!store || store.canvas.width !== w || store.canvas.height !== h) {
    const canvas = new OffscreenCanvas(w, h);
    store = { canvas, context: canvas.getContext("2d")!, key: "", trials: new Set() };
    kept.set(surface, store);
  }
  const restIds = ids ? new Set(rest.map(({ r }) => ids[r])) : null;
  let gone = 0;
  if (restIds) for (const id of store.trials) if (!restIds.has(id)) gone++;
  if (!restIds || store.key !== key || gone > store.trials.size / 5) {
    store.key = key;
    store.trials.clear();
    store.context.setTransform(ratio, 0, 0, ratio, 0, 0);
    store.context.clearRect(0, 0, width, height);
  }
  const fresh = restIds ? rest.filter(({ r }) => !store!.trials.has(ids![r])) : rest;
  lines(store.context, fresh);
  if (ids) for (const { r } of fresh) store.trials.add(ids[r]);
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.drawImage(store.canvas, 0, 0);
  ctx.restore();
  lines(ctx, leading);
  ctx.strokeStyle = "#343a40";
  ctx.fillStyle = "#343a40";
  ctx.textAlign = "center";
  for (let c = 0; c < columns; c++) {
    ctx.beginPath();
    ctx.moveTo(x(c), top);
    ctx.lineTo(x(c), bottom);
    ctx.stroke();
    const name = c < axes.length ? axes[c].name : metric;
    ctx.font = "600 11px system-ui, sans-serif";
    ctx.fillText(name, x(c), 14);
    ctx.font = "10px system-ui, sans-serif";
    const axisInfo = axes[c];
    if (axisInfo?.categorical) {
      (axisInfo.categories ?? []).forEach((label: string, i: number) => ctx.fillText(label, x(c), y(c, i) - 3));
    } else {
      ctx.fillText(fmtNumber(ranges[c].high, 3), x(c), top - 6);
      ctx.fillText(fmtNumber(ranges[c].low, 3), x(c), bottom + 13);
    }
  }
}

export function drawImportance(container: HTMLElement, sample: Json) {
  const axes: Json[] = [...(sample.axes ?? [])].sort((a, b) => num(b.importance) - num(a.importance));
  // Rows rebuilt only when what they show changed (a running study's shares move slowly).
  const shown = JSON.stringify(axes.map((a) => [a.name, (num(a.importance) * 100).toFixed(1)]));
  if (container.dataset.shown === shown) return;
  container.dataset.shown = shown;
  container.replaceChildren();
  if (axes.length === 0 || axes.every((a) => num(a.importance) === 0)) {
    container.innerHTML = `<p class="muted">Needs a few completed trials.</p>`;
    return;
  }
  for (const a of axes) {
    const share = num(a.importance);
    const row = document.createElement("div");
    row.className = "importance-row";
    row.innerHTML = `<span class="name"></span><span class="bar"><span style="width:${(share * 100).toFixed(1)}%"></span></span><span class="value">${(share * 100).toFixed(0)} %</span>`;
    row.querySelector(".name")!.textContent = a.name;
    container.append(row);
  }
}
