// Parallel coordinates (canvas): one vertical axis per parameter and one for the objective, a
// line per sampled trial coloured by its objective's rank (best ones bright, drawn last).
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

/**
 * Draws the sample on `surface`, whose canvas's CSS size is `size` (the caller keeps it from a
 * ResizeObserver: reading it here, after the page changed the DOM, would force a layout).
 */
export function drawParallel(surface: Surface, sample: Json, metric: string, maximize: boolean, size: { width: number; height: number }) {
  const axes: Json[] = sample.axes ?? [];
  const values = nums(sample.values);
  const columns = axes.length + 1;
  const rows = columns > 0 ? Math.floor(values.length / columns) : 0;
  const { width, height } = size;
  if (width === 0 || height === 0) return;
  const ctx = surface.begin(width, height);
  try {
    drawLines(ctx, axes, values, columns, rows, metric, maximize, size);
  } finally {
    surface.end();
  }
}

function drawLines(ctx: OffscreenCanvasRenderingContext2D, axes: Json[], values: number[], columns: number, rows: number, metric: string, maximize: boolean, { width, height }: { width: number; height: number }) {
  ctx.textAlign = "start"; // the last drawing's, kept with the canvas
  ctx.font = "11px system-ui, sans-serif";
  if (rows === 0) {
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
  ctx.lineWidth = 1;
  // Lines of one colour in a row (ranked order: each colour's lines are consecutive) are stroked
  // as one path where a line is one device pixel wide: the canvas (Skia) draws such a stroke as
  // a hairline, segment by segment, so the pixels are those of one stroke per line (the same,
  // checked), for a fifth of the strokes (a third less time). Wider device pixels (a pixel
  // ratio over 1) stroke each line alone: a wider path would be filled as one shape.
  const together = (window.devicePixelRatio || 1) <= 1;
  let open: string | null = null;
  for (const { r, t } of order) {
    const stroke = color(t);
    if (!together || stroke !== open) {
      if (open !== null) ctx.stroke();
      ctx.strokeStyle = stroke;
      ctx.beginPath();
      open = stroke;
    }
    for (let c = 0; c < columns; c++) {
      const v = values[r * columns + c];
      const py = Number.isFinite(v) ? y(c, v) : bottom;
      if (c === 0) ctx.moveTo(x(c), py);
      else ctx.lineTo(x(c), py);
    }
  }
  if (open !== null) ctx.stroke();
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
