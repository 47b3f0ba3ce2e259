// Replays one recording (record.mjs) into several builds of the web app side by side and
// reports each one's renderer CPU: the same events at the same times, so that what differs is
// the page's own work.
//
//   HIPPO_NODE_MODULES=build/dashboard/web/node_modules node benchmarks/dashboard/replay/compare.mjs \
//     --recording REC.json [--pages 4] [--runs 3] [--start 15] [--seconds 60] NAME=DIST[@REC2.json] ...
//
// A variant may name a recording of its own (`@REC2.json`, e.g. made by transform.mjs: the same
// page fed other events); the others replay --recording.
// Each run starts, for every variant, a browser of its own (bare_browser.mjs: as the
// benchmark's watching pages, no DevTools client attached while they watch) and a replay
// server, opens the pages round-robin (each variant's pages open at about the same times),
// waits `start` seconds, then reads every browser's threads' CPU over `seconds`. Variants
// alternate in order from run to run. Prints each run, then the medians over the runs: a
// page's renderer CPU-s a minute (all renderer processes' threads over the pages; its main
// thread and compositor apart) and the browser's other processes. `start + seconds` must stay
// within the recording's length (events stop at its end).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { playwright } from "../../../tests/dashboard/harness.mjs";
import { argumentsOf, BareBrowser } from "../bare_browser.mjs";
import { loadRecording, serveReplay } from "./replay_server.mjs";
import { perMinute, threads, tree } from "./procs.mjs";

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    recording: { type: "string" },
    pages: { type: "string", default: "4" },
    runs: { type: "string", default: "3" },
    start: { type: "string", default: "15" },
    seconds: { type: "string", default: "60" },
  },
});
const pages = Number(options.pages), runs = Number(options.runs), start = Number(options.start), seconds = Number(options.seconds);
const recordings = new Map();
const recordingOf = (file) => {
  if (!recordings.has(file)) {
    const recording = loadRecording(file);
    if (start + seconds > recording.seconds) console.warn(`warning: ${file}'s events end at ${recording.seconds.toFixed(0)} s, before ${start + seconds} s`);
    recordings.set(file, recording);
  }
  return recordings.get(file);
};
const variants = positionals.map((spec) => {
  const [name, rest] = spec.split("=");
  const [dist, file] = rest.split("@");
  return { name, dist, recording: recordingOf(file ?? options.recording), results: [] };
});

// The arguments playwright starts Chromium with (headless mode and all), for the bare browsers.
const launched = await playwright().chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const root = tree(process.pid).find((p) => p.type === "browser" && /chrom/.test(readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0")[0]));
const args = argumentsOf(root.pid);
await launched.close();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const sum = (entries) => entries.reduce((total, [, x]) => total + x, 0);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
// What the first page shows at the end: the trials figure and the charts' versions.
const shownExpression = `["#curves .chart", "#history .chart", "#parallel canvas", "#savings .chart"].map((s) => document.querySelector(s)?.dataset.version ?? "-").join("/") + " trials " + document.querySelector(".stat:nth-child(3) .value")?.textContent`;

for (let run = 0; run < runs; run++) {
  const order = run % 2 ? [...variants].reverse() : variants;
  const active = [];
  for (const variant of order) active.push({ variant, browser: new BareBrowser("/usr/bin/chromium", args), replay: await serveReplay(variant.dist, variant.recording), opened: [] });
  for (let i = 0; i < pages; i++) for (const a of active) a.opened.push(await a.browser.open(`${a.replay.url}#/study/${a.variant.recording.id}`, 1440, 1000));
  await sleep(start * 1000);
  for (const a of active) a.before = threads(a.browser.rootPid);
  const began = Date.now();
  await sleep(seconds * 1000);
  const minutes = (Date.now() - began) / 60000;
  for (const a of active) a.after = threads(a.browser.rootPid);
  for (const a of active) {
    const rates = perMinute(a.before, a.after, minutes);
    const renderer = Object.entries(rates).filter(([k]) => k.startsWith("renderer/"));
    const result = {
      renderer: sum(renderer) / pages,
      main: (rates["renderer/chromium"] ?? 0) / pages,
      compositor: (rates["renderer/Compositor"] ?? 0) / pages,
      other: sum(Object.entries(rates).filter(([k]) => !k.startsWith("renderer/"))),
    };
    a.variant.results.push(result);
    const shown = await a.browser.evaluate(a.opened[0], shownExpression).catch((error) => String(error));
    console.log(`run ${run + 1} ${a.variant.name.padEnd(14)} renderer ${result.renderer.toFixed(3)} CPU-s/page-min (main thread ${result.main.toFixed(3)}, compositor ${result.compositor.toFixed(3)}), other processes ${result.other.toFixed(2)} CPU-s/min; shown ${shown}`);
    a.browser.close();
    a.replay.server.close();
  }
}
console.log(`\nmedians of ${runs} runs, ${pages} pages each, ${seconds} s from ${start} s:`);
for (const v of variants) {
  const m = (key) => median(v.results.map((r) => r[key])).toFixed(3);
  console.log(`${v.name.padEnd(14)} renderer ${m("renderer")} CPU-s/page-min (main ${m("main")}, compositor ${m("compositor")}), other ${m("other")} CPU-s/min; runs ${v.results.map((r) => r.renderer.toFixed(2)).join(" ")}`);
}
process.exit(0);
