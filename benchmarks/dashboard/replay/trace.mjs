// Traces one page of each build of the web app replaying a recording (record.mjs), one build
// after the other, and writes a Chromium trace per build (chrome://tracing, or
// trace_summary.py for the CPU by thread and by event, with `--profile` the JavaScript too).
//
//   HIPPO_NODE_MODULES=build/dashboard/web/node_modules node benchmarks/dashboard/replay/trace.mjs \
//     --recording REC.json --out DIR [--start 10] [--seconds 20] [--profile] NAME=DIST ...
//
// The page is playwright's (a DevTools client is attached: its CPU is not the benchmark's; use
// compare.mjs for figures). Writes DIR/trace-NAME.json and a screenshot DIR/shot-NAME.png.
import path from "node:path";
import { parseArgs } from "node:util";
import { playwright } from "../../../tests/dashboard/harness.mjs";
import { loadRecording, serveReplay } from "./replay_server.mjs";

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    recording: { type: "string" },
    out: { type: "string", default: "." },
    start: { type: "string", default: "10" },
    seconds: { type: "string", default: "20" },
    profile: { type: "boolean", default: false },
  },
});
const recording = loadRecording(options.recording);
const categories = ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8.execute", "toplevel", "v8", "disabled-by-default-v8.gc", "cc", "blink", "gpu", "viz", "benchmark"];
if (options.profile) categories.push("disabled-by-default-v8.cpu_profiler");
const browser = await playwright().chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
for (const spec of positionals) {
  const [name, dist] = spec.split("=");
  const replay = await serveReplay(dist, recording);
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  await page.goto(`${replay.url}#/study/${recording.id}`);
  await page.waitForTimeout(Number(options.start) * 1000);
  await browser.startTracing(page, { path: path.join(options.out, `trace-${name}.json`), categories });
  await page.waitForTimeout(Number(options.seconds) * 1000);
  await browser.stopTracing();
  await page.screenshot({ path: path.join(options.out, `shot-${name}.png`) });
  await context.close();
  replay.server.close();
  console.log(`${name}: ${path.join(options.out, `trace-${name}.json`)}`);
}
await browser.close();
process.exit(0);
