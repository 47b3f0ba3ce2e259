// Optimization history: the objective by trial number (each bin's range when the server bins
// a large study) and the best value so far.
import uPlot from "uplot";
import { Json, nums } from "../api";
import { axis, COLORS, Plot } from "./plot";

export function drawHistory(plot: Plot, history: Json, metric: string) {
  const x = nums(history.trial);
  const low = nums(history.low);
  const high = nums(history.high);
  const best = nums(history.best_so_far);
  const clean = (values: number[]) => values.map((v) => (Number.isFinite(v) ? v : null));
  const binned = Number(history.bin_width ?? 1) > 1;
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
