// The dashboard benchmark: a coordinator on a store holding a finished study of 100 000 trials
// (random_100k.yaml, made once by `hippo run`) and a running one (running.yaml, two workers).
//   1. The study page of the 100 000-trial study in headless Chromium: time to first paint, time
//      until the learning-curve chart and the trial table are interactive, bytes transferred,
//      and where the time went (each request, the app's marks, long tasks).
//   2. The coordinator's dispatch rate (trials of the running study completed per second, read
//      from the store's file) with no dashboard, with 10 node clients doing what the study page
//      does (its first reads, then the event stream that pushes the study's page), and with 10
//      real Chromium pages of the running study, in alternating rounds.
// Usage: node dashboard_benchmark.mjs --db BIG.db [--page-runs 5] [--rounds 3] [--seconds 20]
//        [--out FILE]   (run_benchmark.sh makes BIG.db and passes it)
// Env: HIPPO_BIN (the hippo binary), HIPPO_NODE_MODULES (build/dashboard/web/node_modules).
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { api, eventually, playwright, startServer, startWorker, stopAll, submit } from "../../tests/dashboard/harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: { db: { type: "string" }, "page-runs": { type: "string", default: "5" }, rounds: { type: "string", default: "3" }, seconds: { type: "string", default: "20" }, out: { type: "string", default: "" } },
});
if (!args.db || !existsSync(args.db)) {
  console.error(`--db: give the store made by: hippo run ${path.join(here, "random_100k.yaml")} --db BIG.db --workers 4`);
  process.exit(2);
}
const results = { machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "", load_average_start: loadavg() } };

// A copy, so that the running study does not change the prepared store.
const dir = mkdtempSync(path.join(tmpdir(), "hippo-dash-bench-"));
copyFileSync(args.db, path.join(dir, "hippo.db"));
const loadStart = Date.now();
const server = await startServer({ dir, startTimeoutMs: 600000 }); // recovery of 100 000 trials
results.coordinator_start_seconds = (Date.now() - loadStart) / 1000;
// The dashboard's first read of the store (its mirror loads every study's trials once).
const big = await eventually(async () => {
  const rows = (await api(server.url, "studies")).body.studies ?? [];
  return rows.find((row) => Number(row.study.trials_total) >= 100000);
}, "the 100 000-trial study in the dashboard", 300000);
results.mirror_first_load_seconds = (Date.now() - loadStart) / 1000;
startWorker(server, "w1");
startWorker(server, "w2");
// The CLI links LibTorch and starts slowly on a loaded machine: a submit may need a second try.
const running = await eventually(async () => submit(server, path.join(here, "running.yaml")), "the running study submitted", 120000);
await eventually(async () => Number((await api(server.url, `studies/${running}`)).body.study?.trials_completed ?? 0) > 50, "the running study to run");

// 1. The study page in Chromium, cold (a fresh browser context, no cache). The URL carries the
// token once (the server answers with its cookie), as the one `hippo server` prints.
const studyUrl = (id) => `${server.loginUrl}#/study/${encodeURIComponent(id)}`;
const browser = await playwright().chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const pageRuns = [];
for (let run = 0; run < Number(args["page-runs"]); run++) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  // Long tasks (main-thread work over 50 ms) from the start, for the breakdown.
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((e) => [Math.round(e.startTime), Math.round(e.duration)]))).observe({ type: "longtask", buffered: true });
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  let bytes = 0;
  cdp.on("Network.loadingFinished", (event) => (bytes += event.encodedDataLength));
  const started = Date.now();
  await page.goto(studyUrl(big.study.id), { waitUntil: "commit" });
  await page.waitForFunction(() => performance.getEntriesByName("first-contentful-paint").length > 0);
  const firstPaint = await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0].startTime);
  // Interactive: the curves drawn (the best trials' lines over the density) and table rows,
  // checked at every animation frame in the page: the time is that frame's.
  const interactive = await (
    await page.waitForFunction(() => /top [1-9]/.test(document.querySelector("#curves .legend")?.textContent ?? "") && document.querySelector("#trials [data-trial]") !== null && performance.now(), null, { timeout: 60000, polling: "raf" })
  ).jsonValue();
  const bytesInteractive = bytes;
  // Where the time went: each request (start, first byte, end, bytes), the app's own marks
  // (summary shown, curves drawn, table rows shown), the long tasks.
  const breakdown = await page.evaluate(() => ({
    requests: performance.getEntriesByType("resource").concat(performance.getEntriesByType("navigation")).map((e) => ({
      name: e.name.replace(location.origin, "").replace(/token=[^&#]*/, "token=…"),
      start: Math.round(e.startTime),
      first_byte: Math.round(e.responseStart),
      end: Math.round(e.responseEnd),
      bytes: e.transferSize,
      decoded: e.decodedBodySize,
    })),
    marks: Object.fromEntries(performance.getEntriesByType("mark").map((m) => [m.name, Math.round(m.startTime)])),
    long_tasks: window.__longTasks,
  }));
  // The table answers a sort (a server-side sort of 100 000 trials) and a scroll.
  const sortStart = Date.now();
  await page.click('#trials [data-column="objective"]');
  await page.waitForFunction(() => (document.querySelector("#trials .thead")?.textContent ?? "").includes("▼") && document.querySelector("#trials .tbody [data-trial]") !== null);
  const sortMs = Date.now() - sortStart;
  if (run === 0) {
    await page.waitForTimeout(1500);
    await page.screenshot({ path: path.join(server.dir, "study-100k.png"), fullPage: true });
  }
  pageRuns.push({ first_paint_ms: firstPaint, interactive_ms: interactive, wall_ms: Date.now() - started, bytes_until_interactive: bytesInteractive, sort_ms: sortMs, breakdown });
  await context.close();
}
results.study_page = pageRuns;
results.screenshot = path.join(server.dir, "study-100k.png");

// 2. Dispatch rate: no dashboard, 10 node clients, 10 Chromium pages, in alternating rounds.
// Dashboards go idle 20 s after their last request (the mirror stops polling), so "none"
// rounds wait that long first.
// Completed trials of the running study, read from the store's file (SQLite in WAL mode takes
// readers beside the coordinator's writer), so that measuring wakes no dashboard and costs no
// engine call.
function completed() {
  const sql = `select count(*) from trials where study_id = '${running}' and state = 2`;
  return Number(execFileSync("sqlite3", [path.join(dir, "hippo.db"), sql]).toString().trim());
}
// The coordinator's CPU time (user + system, in clock ticks of 1/100 s) from /proc: its CPU per
// trial tells the dashboards' cost apart from the machine's other load, which moves the rate.
function cpuSeconds() {
  const fields = readFileSync(`/proc/${server.child.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
// The dashboard's own threads (named hippo-http and hippo-mirror by the server): their CPU
// time, the part of the coordinator's that is the dashboard's work.
function dashboardCpuSeconds() {
  const tasks = `/proc/${server.child.pid}/task`;
  let ticks = 0;
  for (const task of readdirSync(tasks)) {
    try {
      const name = readFileSync(`${tasks}/${task}/comm`, "utf8").trim();
      if (name !== "hippo-http" && name !== "hippo-mirror") continue;
      const fields = readFileSync(`${tasks}/${task}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {} // a thread that ended meanwhile
  }
  return ticks / 100;
}
const cpuPerTrial = { none: [], node: [], chromium: [] };
const chromiumReads = []; // per round: the ten pages' reads while watching
const dashboardCpuPerTrial = { none: [], node: [], chromium: [] };
async function rate(seconds, kind) {
  const a = completed();
  const cpu = cpuSeconds();
  const dashboardCpu = dashboardCpuSeconds();
  const t = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const trials = completed() - a;
  cpuPerTrial[kind].push((1000 * (cpuSeconds() - cpu)) / Math.max(1, trials));
  dashboardCpuPerTrial[kind].push((1000 * (dashboardCpuSeconds() - dashboardCpu)) / Math.max(1, trials));
  return trials / ((Date.now() - t) / 1000);
}
// A node client doing what the study page does: its seven reads once, then the event stream
// watching the study (?study=ID), which pushes the parts that change: no more reads. It parses
// each event's JSON as the page does. Cheap on the client's side, so that it measures the
// coordinator's cost.
const streamed = { events: 0, bytes: 0 };
function nodeDashboard(url, study, signal) {
  const reads = [`studies/${study}`, `studies/${study}/curves`, `studies/${study}/history`, `studies/${study}/parameters`, `studies/${study}/savings`, `studies/${study}/tree?depth=6&max_children=40`, `studies/${study}/trials?page_size=100&sort=id&desc=false`];
  const headers = { "x-hippo-token": server.token };
  void Promise.all(reads.map((r) => fetch(new URL(`api/v1/${r}`, url), { signal, headers }).then((x) => x.arrayBuffer()))).catch(() => {});
  (async () => {
    try {
      const response = await fetch(new URL(`api/v1/events?study=${encodeURIComponent(study)}`, url), { signal, headers });
      const decoder = new TextDecoder();
      let buffered = "";
      for await (const chunk of response.body) {
        streamed.bytes += chunk.length;
        buffered += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = event.split("\n").find((line) => line.startsWith("data: "));
          if (data) {
            JSON.parse(data.slice(6));
            streamed.events++;
          }
        }
      }
    } catch {}
  })();
}
const seconds = Number(args.seconds);
const rounds = { none: [], node: [], chromium: [] };
const pagesBrowser = await playwright().chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
for (let round = 0; round < Number(args.rounds); round++) {
  await new Promise((r) => setTimeout(r, 22000));
  rounds.none.push(await rate(seconds, "none"));
  const controller = new AbortController();
  for (let i = 0; i < 10; i++) nodeDashboard(server.url, running, controller.signal);
  await new Promise((r) => setTimeout(r, 3000));
  rounds.node.push(await rate(seconds, "node"));
  controller.abort();
  // Ten real study pages of the running study, each in its own context (its own renderer).
  const contexts = [];
  // The pages' reads while they watch (the event streams left out): counted from the round's
  // start, after their first reads.
  let counting = false;
  let reads = 0;
  for (let i = 0; i < 10; i++) {
    const context = await pagesBrowser.newContext({ viewport: { width: 1440, height: 1000 } });
    const page = await context.newPage();
    page.on("request", (request) => {
      if (counting && request.url().includes("/api/v1/") && !request.url().includes("/api/v1/events")) reads++;
    });
    // On this loaded machine a navigation can fail once (a connection refused as Chromium
    // opens it): try again.
    await eventually(async () => (await page.goto(studyUrl(running), { waitUntil: "commit", timeout: 60000 }), true), "a study page of the running study", 120000);
    contexts.push(context);
  }
  await new Promise((r) => setTimeout(r, 5000));
  counting = true;
  rounds.chromium.push(await rate(seconds, "chromium"));
  counting = false;
  chromiumReads.push(reads);
  for (const context of contexts) await context.close();
}
await pagesBrowser.close();
await browser.close();
results.dispatch_rate = rounds;
results.coordinator_cpu_ms_per_trial = cpuPerTrial;
results.dashboard_threads_cpu_ms_per_trial = dashboardCpuPerTrial;
results.node_clients_streamed = streamed;
results.chromium_pages_reads_per_round = chromiumReads;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pageMedian = (key) => median(pageRuns.map((r) => r[key]));
const summary = {
  first_paint_ms: pageMedian("first_paint_ms"),
  interactive_ms: pageMedian("interactive_ms"),
  bytes_until_interactive: pageMedian("bytes_until_interactive"),
  sort_100k_ms: pageMedian("sort_ms"),
  dispatch_none_per_s: median(rounds.none),
  dispatch_node_clients_per_s: median(rounds.node),
  dispatch_chromium_pages_per_s: median(rounds.chromium),
  coordinator_cpu_ms_per_trial_none: median(cpuPerTrial.none),
  coordinator_cpu_ms_per_trial_node: median(cpuPerTrial.node),
  coordinator_cpu_ms_per_trial_chromium: median(cpuPerTrial.chromium),
  dashboard_threads_cpu_ms_per_trial_node: median(dashboardCpuPerTrial.node),
  dashboard_threads_cpu_ms_per_trial_chromium: median(dashboardCpuPerTrial.chromium),
  chromium_pages_reads_per_round: chromiumReads,
};
results.summary = summary;
results.machine.load_average_end = loadavg();
console.log(JSON.stringify({ machine: results.machine, summary }, null, 2));
if (args.out) writeFileSync(args.out, JSON.stringify(results, null, 2));
stopAll();
process.exit(0);
