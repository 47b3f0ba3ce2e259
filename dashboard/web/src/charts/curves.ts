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

function drawDensity(u: uPlot, overview: Json) {
  const stepBins = num(overview.step_bins);
  const valueBins = num(overview.value_bins);
  if (stepBins === 0 || valueBins === 0) return;
  const stepWidth = (num(overview.step_high) - num(overview.step_low)) / stepBins;
  const valueHeight = (num(overview.value_high) - num(overview.value_low)) / valueBins;
  const ctx = u.ctx;
  ctx.save();
  ctx.beginPath();
  ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
  ctx.clip();
  const layers: [number[], string][] = [
    [nums(overview.completed_density), "66, 99, 235"],
    [nums(overview.pruned_density), "201, 42, 42"],
  ];
  for (const [density, rgb] of layers) {
    let max = 0;
    for (const c of density) max = Math.max(max, c);
    if (max === 0) continue;
    const scale = 1 / Math.log1p(max);
    for (let i = 0; i < stepBins; i++) {
      const x0 = u.valToPos(num(overview.step_low) + i * stepWidth, "x", true);
      const x1 = u.valToPos(num(overview.step_low) + (i + 1) * stepWidth, "x", true);
      for (let j = 0; j < valueBins; j++) {
        const count = density[i * valueBins + j];
        if (!count) continue;
        const y0 = u.valToPos(num(overview.value_low) + j * valueHeight, "y", true);
        const y1 = u.valToPos(num(overview.value_low) + (j + 1) * valueHeight, "y", true);
        ctx.fillStyle = `rgba(${rgb}, ${(0.08 + 0.55 * Math.log1p(count) * scale).toFixed(3)})`;
        ctx.fillRect(x0, y1, Math.max(1, x1 - x0 + 0.5), Math.max(1, y0 - y1 + 0.5));
      }
    }
  }
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
  const low = num(overview.value_low);
  const high = num(overview.value_high);
  const pad = (high - low) * 0.04;
  plot.set(
    {
      series,
      axes: [axis("step"), axis(overview.metric ?? "objective", { size: 60 })],
      scales: { x: { time: false }, y: { range: () => [low - pad, high + pad] } },
      legend: { show: false },
      cursor: { drag: { x: true, y: true, uni: 20 }, points: { show: false } },
      hooks: { drawAxes: [(u: uPlot) => drawDensity(u, overview)] },
    },
    data as uPlot.AlignedData,
    `curves-${shown.map((c) => c.id).join(",")}-${bestId}`,
  );
  legend.replaceChildren();
  legend.innerHTML =
    `<span class="key" style="--c:${COLORS.best}"></span>best trial ${bestId >= 0 ? bestId : "—"}` +
    `<span class="key" style="--c:${COLORS.line}"></span>top ${best.length}` +
    `<span class="key" style="--c:rgba(66,99,235,.4)"></span>all trials (density)` +
    `<span class="key" style="--c:${COLORS.pruned}"></span>pruned`;
}
