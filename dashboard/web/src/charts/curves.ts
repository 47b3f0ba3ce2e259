// Learning curves: every trial's intermediate values as a density the server bins (completed
// trials in blue, pruned ones in red), with the best trials' curves drawn in full over it (the
// best highlighted) and the curves of the trials the user picked (or of all trials in a small
// study), pruned ones dashed.
import uPlot from "uplot";
import { Json, num, nums } from "../api";
import { axis, COLORS, Plot } from "./plot";

type Curve = { id: number; state: string; steps: number[]; values: number[] };

function curvesOf(list: Json[] | undefined): Curve[] {
  return (list ?? []).map((c) => ({ id: num(c.trial_id), state: c.state ?? "", steps: nums(c.steps), values: nums(c.values) }));
}

// The density as an image of one pixel per (step bin, value bin), scaled onto the plot: two
// layers of 200 × 80 cells cost one drawImage rather than 32 000 rectangles. Drawn on an
// OffscreenCanvas kept with the chart (one made at each redraw was a canvas element and its
// context allocated again every couple of seconds).
function densityImage(overview: Json, kept: OffscreenCanvas | null): OffscreenCanvas | null {
  const stepBins = num(overview.step_bins);
  const valueBins = num(overview.value_bins);
  if (stepBins === 0 || valueBins === 0) return null;
  const image = new ImageData(stepBins, valueBins);
  const layers: [number[], number[]][] = [
    [nums(overview.completed_density), [66, 99, 235]],
    [nums(overview.pruned_density), [201, 42, 42]],
  ];
  for (const [density, rgb] of layers) {
    let max = 0;
    for (const c of density) max = Math.max(max, c);
    if (max === 0) continue;
    const scale = 1 / Math.log1p(max);
    for (let i = 0; i < stepBins; i++) {
      for (let j = 0; j < valueBins; j++) {
        const count = density[i * valueBins + j];
        if (!count) continue;
        // Row 0 of the image is the highest value bin.
        const at = ((valueBins - 1 - j) * stepBins + i) * 4;
        const alpha = 0.08 + 0.55 * Math.log1p(count) * scale;
        // Over an earlier layer: "source over" by hand.
        const under = image.data[at + 3] / 255;
        const out = alpha + under * (1 - alpha);
        for (let k = 0; k < 3; k++) image.data[at + k] = (rgb[k] * alpha + image.data[at + k] * under * (1 - alpha)) / out;
        image.data[at + 3] = out * 255;
      }
    }
  }
  const canvas = kept && kept.width === stepBins && kept.height === valueBins ? kept : new OffscreenCanvas(stepBins, valueBins);
  canvas.getContext("2d")!.putImageData(image, 0, 0);
  return canvas;
}

type Shown = { overview: Json; image: OffscreenCanvas | null; low: number; high: number };
const drawn = new WeakMap<Plot, Shown>();

function drawDensity(u: uPlot, { overview, image }: Shown) {
  if (!image) return;
  const ctx = u.ctx;
  ctx.save();
  ctx.beginPath();
  ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
  ctx.clip();
  ctx.imageSmoothingEnabled = false;
  const x0 = u.valToPos(num(overview.step_low), "x", true);
  const x1 = u.valToPos(num(overview.step_high), "x", true);
  const y0 = u.valToPos(num(overview.value_low), "y", true);
  const y1 = u.valToPos(num(overview.value_high), "y", true);
  ctx.drawImage(image, x0, y1, x1 - x0, y0 - y1);
  ctx.restore();
}

export function drawCurves(plot: Plot, overview: Json, legend: HTMLElement) {
  const best = curvesOf(overview.best);
  const selected = curvesOf(overview.selected).filter((c) => !best.some((b) => b.id === c.id));
  const bestId = num(overview.best_trial_id, -1);
  const shown = [...selected, ...best.slice().reverse()]; // the best drawn last, on top
  const stepSet = new Set<number>();
  for (const curve of shown) for (const s of curve.steps) stepSet.add(s);
  if (stepSet.size === 0) {
    stepSet.add(num(overview.step_low));
    stepSet.add(num(overview.step_high));
  }
  const xs = [...stepSet].sort((a, b) => a - b);
  const index = new Map(xs.map((s, i) => [s, i]));
  const data: (number | null)[][] = [xs];
  const series: uPlot.Series[] = [{ label: "step" }];
  for (const curve of shown) {
    const ys: (number | null)[] = new Array(xs.length).fill(null);
    curve.steps.forEach((s, i) => (ys[index.get(s)!] = Number.isFinite(curve.values[i]) ? curve.values[i] : null));
    data.push(ys);
    const isBest = curve.id === bestId;
    const pruned = curve.state === "TRIAL_STOPPED" || curve.state === "TRIAL_FAILED";
    const topTen = best.some((b) => b.id === curve.id);
    series.push({
      label: `trial ${curve.id}`,
      stroke: isBest ? COLORS.best : pruned ? COLORS.pruned : topTen ? COLORS.line : "rgba(112, 72, 232, 0.7)",
      width: isBest ? 2.5 : 1,
      dash: pruned ? [4, 3] : undefined,
      spanGaps: true,
      points: { show: false },
    });
  }
  // The density's range (the 1st to 99th percentile of all values), widened to the curves
  // drawn, so that the best one is never cut off.
  let low = num(overview.value_low);
  let high = num(overview.value_high);
  for (const curve of shown) {
    for (const v of curve.values) {
      if (!Number.isFinite(v)) continue;
      low = Math.min(low, v);
      high = Math.max(high, v);
    }
  }
  const pad = (high - low) * 0.04;
  // Read by the chart's hooks, which outlive this call when only the data changes.
  drawn.set(plot, { overview, image: densityImage(overview, drawn.get(plot)?.image ?? null), low: low - pad, high: high + pad });
  plot.set(
    {
      series,
      axes: [axis("step"), axis(overview.metric ?? "objective", { size: 60 })],
      scales: { x: { time: false }, y: { range: () => [drawn.get(plot)!.low, drawn.get(plot)!.high] } },
      legend: { show: false },
      cursor: { drag: { x: true, y: true, uni: 20 }, points: { show: false } },
      hooks: { drawAxes: [(u: uPlot) => drawDensity(u, drawn.get(plot)!)] },
    },
    data as uPlot.AlignedData,
    // The chart is made again only when the series' looks change: a new trial among the best
    // (a running study's top ten change often) only changes the data.
    `curves-${series.map((s) => `${s.stroke}/${s.width}/${s.dash ?? ""}`).join(",")}`,
  );
  // The labels follow the trials shown (the chart's own series are copies of `series`).
  plot.plot?.series.forEach((s, i) => (s.label = series[i]?.label ?? s.label));
  // The legend's nodes are made again only when its text changed.
  const html =
    `<span class="key" style="--c:${COLORS.best}"></span>best trial ${bestId >= 0 ? bestId : "—"}` +
    `<span class="key" style="--c:${COLORS.line}"></span>top ${best.length}` +
    `<span class="key" style="--c:rgba(66,99,235,.4)"></span>all trials (density)` +
    `<span class="key" style="--c:${COLORS.pruned}"></span>pruned`;
  if (legend.dataset.shown !== html) {
    legend.dataset.shown = html;
    legend.innerHTML = html;
  }
}
