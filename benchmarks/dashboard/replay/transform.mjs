// Makes a recording (record.mjs) into another one as a different server would have sent it, to
// measure with compare.mjs what a change of the events would save a page before making it:
//
//   node transform.mjs IN.json OUT.json [--every N] [--charts-every N] [--drop PART,...] [--history-bins K]
//
// --every N keeps every Nth event (at its own time; an event a second becomes one every N s);
// --charts-every N keeps the charts (every part of the study's but the trials) in every Nth;
// --drop removes the watched study's parts named (curves, history, parameters, savings, tree,
// trials) from every event; --history-bins K merges the history's bins, a few at a time, down to
// at most K (a merged bin's range is its bins' lowest and highest, its best so far its last).
// Events are written one chunk each, at the time of their first byte.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: { every: { type: "string", default: "1" }, "charts-every": { type: "string", default: "1" }, drop: { type: "string", default: "" }, "history-bins": { type: "string", default: "0" } },
});
const [input, output] = positionals;
const recording = JSON.parse(readFileSync(input, "utf8"));

// The stream's events, each with the time its first byte came.
const events = [];
let text = "";
let textStart = 0;
for (const chunk of recording.events) {
  if (text === "") textStart = chunk.t;
  text += Buffer.from(chunk.data, "base64").toString();
  let end;
  while ((end = text.indexOf("\n\n")) >= 0) {
    events.push({ t: textStart, block: text.slice(0, end + 2) });
    text = text.slice(end + 2);
    textStart = chunk.t;
  }
}

function mergeHistory(history, most) {
  const x = history.trial ?? [];
  const k = Math.ceil(x.length / most);
  if (k <= 1) return;
  const out = { trial: [], low: [], high: [], best_so_far: [] };
  for (let start = 0; start < x.length; start += k) {
    const end = Math.min(x.length, start + k);
    const range = (key, pick) => history[key].slice(start, end).filter((v) => typeof v === "number").reduce((a, b) => (a === null ? b : pick(a, b)), null);
    out.trial.push(x[start]);
    out.low.push(range("low", Math.min) ?? history.low[start]);
    out.high.push(range("high", Math.max) ?? history.high[start]);
    out.best_so_far.push(history.best_so_far[end - 1]);
  }
  Object.assign(history, out, { bin_width: Number(history.bin_width ?? 1) * k });
}

const every = Number(options.every);
const chartsEvery = Number(options["charts-every"]);
const drop = options.drop.split(",").filter(Boolean);
const bins = Number(options["history-bins"]);
const kept = [];
let index = 0;
for (const { t, block } of events) {
  if (!block.includes("\ndata:") && !block.startsWith("data:")) continue;
  if (index++ % every !== 0) continue;
  const lines = block.split("\n");
  const data = JSON.parse(lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n"));
  for (const part of drop) delete data.study?.[part];
  if (data.study && (kept.length % chartsEvery) !== 0) {
    for (const part of Object.keys(data.study)) if (!["study_id", "trials", "changed_trials"].includes(part)) delete data.study[part];
  }
  if (bins > 0 && data.study?.history) mergeHistory(data.study.history, bins);
  const head = lines.filter((l) => l && !l.startsWith("data:")).join("\n");
  kept.push({ t, data: Buffer.from(`${head}\ndata: ${JSON.stringify(data)}\n\n`).toString("base64") });
}
writeFileSync(output, JSON.stringify({ ...recording, events: kept }));
const bytes = (list) => list.reduce((sum, e) => sum + Buffer.from(e.data, "base64").length, 0);
console.log(`${output}: ${kept.length} of ${events.length} events, ${bytes(kept)} bytes (were ${bytes(recording.events)})`);
