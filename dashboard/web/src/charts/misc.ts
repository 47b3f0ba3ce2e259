// Savings over time (the trial-by-trial steps of the work done so far, each trial up to the
// step it reached, against steps trained) and a trial's schedule (each sequence hyper-parameter
// as a function of the step).
import uPlot from "uplot";
import { Json, num } from "../api";
import { segmentValue } from "../format";
import { axis, COLORS, Plot } from "./plot";

export function drawSavings(plot: Plot, savings: Json) {
  const points: Json[] = savings.points ?? [];
  const t = points.map((p) => num(p.time_seconds));
  plot.set(
    {
      series: [
        { label: "seconds" },
        { label: "trial steps so far", stroke: COLORS.muted, width: 2, fill: "rgba(66,99,235,0.08)" },
        { label: "steps trained", stroke: COLORS.best, width: 2 },
      ],
      axes: [axis("seconds since the study began"), axis("steps", { size: 60 })],
      scales: { x: { time: false } },
    },
    [t, points.map((p) => num(p.trial_steps)), points.map((p) => num(p.executed_steps))] as uPlot.AlignedData,
    "savings",
  );
}

const PALETTE = ["#4263eb", "#e8590c", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285"];

export function drawSchedule(plot: Plot, trial: Json) {
  const target = Math.max(1, num(trial.target_step));
  const names = Object.keys(trial.parameters ?? {})
    .filter((n) => (trial.parameters[n].segments ?? []).length > 0)
    .sort();
  const xs = [...Array(target).keys()];
  const data: number[][] = [xs];
  for (const name of names) {
    const segments: Json[] = trial.parameters[name].segments;
    data.push(
      xs.map((s) => {
        const segment = segments.find((g) => num(g.start) <= s && s < num(g.end)) ?? segments[segments.length - 1];
        return segmentValue(segment, s);
      }),
    );
  }
  const positive = data.slice(1).every((ys) => ys.every((v) => v > 0));
  const spread = data.slice(1).some((ys) => Math.max(...ys) / Math.min(...ys) > 20);
  plot.set(
    {
      series: [{ label: "step" }, ...names.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: false } }))],
      axes: [axis("step"), axis("value", { size: 60 })],
      scales: { x: { time: false }, y: positive && spread ? { distr: 3 } : {} },
    },
    data as uPlot.AlignedData,
    `schedule-${names.join(",")}-${positive && spread}`,
  );
}
