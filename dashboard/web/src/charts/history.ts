// Optimization history: the objective by trial number (each bin's range when the server bins
// a large study) and the best value so far.
import uPlot from "uplot";
import { Json, nums } from "../api";
import { axis, COLORS, Plot } from "./plot";

/**
 * The server's bins merged `k` at a time, so that a bin is about two pixels of the chart: the
 * server sends up to 1000 bins, more than a chart of a few hundred pixels shows apart, and
 * each one drawn (the band of its range, its lines) costs the page at every redraw. A merged
 * bin's range is its bins' lowest and highest, its best so far its last bin's.
 */
function merged(x: number[], low: number[], high: number[], best: number[], k: number) {
  const out = { x: [] as number[], low: [] as number[], high: [] as number[], best: [] as number[] };
  for (let start = 0; start < x.length; start += k) {
    const end = Math.min(x.length, start + k);
    let lo = NaN;
    let hi = NaN;
    for (let i = start; i < end; i++) {
      if (Number.isFinite(low[i]) && !(lo <= low[i])) lo = low[i];
      if (Number.isFinite(high[i]) && !(hi >= high[i])) hi = high[i];
    }
    out.x.push(x[start]);
    out.low.push(lo);
    out.high.push(hi);
    out.best.push(best[end - 1]);
  }
  return out;
}

export function drawHistory(plot: Plot, history: Json, metric: string) {
  let x = nums(history.trial);
  let low = nums(history.low);
  let high = nums(history.high);
  let best = nums(history.best_so_far);
  const clean = (values: number[]) => values.map((v) => (Number.isFinite(v) ? v : null));
  const binned = Number(history.bin_width ?? 1) > 1;
  const k = Math.ceil(x.length / Math.max(100, Math.floor(plot.width() / 2)));
  if (binned && k > 1) ({ x, low, high, best } = merged(x, low, high, best, k));
  const series: uPlot.Series[] = [
    { label: "trial" },
    {
      label: binned ? "lowest in bin" : metric,
      stroke: binned ? COLORS.muted : "transparent",
      width: binned ? 1 : 0,
      points: { show: !binned, size: 4, fill: COLORS.line, stroke: COLORS.line },
    },
    { label: "highest in bin", stroke: COLORS.muted, width: 1, show: binned, points: { show: false } },
    { label: "best so far", stroke: COLORS.best, width: 2, paths: uPlot.paths.stepped!({ align: 1 }), points: { show: false } },
  ];
  plot.set(
    {
      series,
      bands: binned ? [{ series: [2, 1], fill: "rgba(66, 99, 235, 0.15)" }] : [],
      axes: [axis("trial"), axis(metric, { size: 60 })],
      scales: { x: { time: false } },
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
    },
    [x, clean(low), clean(high), clean(best)] as uPlot.AlignedData,
    `history-${binned}`,
  );
}
