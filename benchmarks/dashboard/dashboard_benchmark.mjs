// The dashboard benchmark: a coordinator on a store holding a finished study of 100 000 trials
// (random_100k.yaml, made once by `hippo run`) and a running one (running.yaml, two workers).
//   1. The study page of the 100 000-trial study in headless Chromium: time to first paint, time
//      until the learning-curve chart and the trial table are interactive, bytes transferred,
//      and where the time went (each request, the app's marks, long tasks).
//   2. The coordinator's dispatch rate (trials of the running study completed per second, read
//      from the store's file) with no dashboard, with 10 node clients doing what the study page
//      does (its first reads, then the event stream that pushes the study's page), with 10 real
//      Chromium pages of the running study whose browser runs at the lowest CPU priority while
//      they watch (SCHED_IDLE: it takes only CPU the coordinator and workers leave idle, as
//      browsers on the users' own machines would), and with 10 at normal priority (the same
//      cores, the worst case), each once a round in an order rotated from round to round; the
//      coordinator's CPU per trial, and the
//      browsers' CPU (each page's renderer, and the browser's other processes) in each.
// Since the seventh round the watching pages run with no DevTools client attached, as a user's
// do (bare_browser.mjs says why and how: playwright's sessions cost the browsers about an
// eighth of their CPU, and this process more), and a page's renderer CPU is every renderer's
// CPU divided by the ten pages (it was divided by the count of renderer processes, about 21:
// half of what a page costs).
// Usage: node dashboard_benchmark.mjs --db BIG.db [--page-runs 5] [--rounds 4] [--seconds 20]
//        [--out FILE]   (run_benchmark.sh makes BIG.db and passes it)
// Env: HIPPO_BIN (the hippo binary), HIPPO_NODE_MODULES (build/dashboard/web/node_modules).
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { api, eventually, playwright, startServer, startWorker, stopAll, submit } from "../../tests/dashboard/harness.mjs";
import { argumentsOf, BareBrowser } from "./bare_browser.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: { db: { type: "string" }, "page-runs": { type: "string", default: "5" }, rounds: { type: "string", default: "4" }, seconds: { type: "string", default: "20" }, out: { type: "string", default: "" } },
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

// 2. Dispatch rate: no dashboard, 10 node clients, 10 Chromium pages at the lowest priority and
// at normal priority, in alternating rounds.
// Dashboards go idle 20 s after their last request or stream (the mirror stops following the
// engine), so "none" waits that long first.
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
const KINDS = ["none", "node", "chromium_idle", "chromium"];
const byKind = () => Object.fromEntries(KINDS.map((kind) => [kind, []]));
const cpuPerTrial = byKind();
const dashboardCpuPerTrial = byKind();
const chromiumReads = byKind(); // per round: the ten pages' reads while watching
// Per round: each page's renderer CPU seconds per minute of watching (their mean), the
// browser's other processes (browser, GPU, network and other utilities) in all, and the nice
// value its renderers ran at.
const chromiumCpu = byKind();
// This process's own CPU per trial: with node clients, mostly theirs (reading and parsing ten
// event streams), on the coordinator's cores as the browsers are.
const ownCpuPerTrial = byKind();
async function rate(seconds, kind) {
  const a = completed();
  const cpu = cpuSeconds();
  const dashboardCpu = dashboardCpuSeconds();
  const own = process.cpuUsage();
  const t = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const trials = completed() - a;
  cpuPerTrial[kind].push((1000 * (cpuSeconds() - cpu)) / Math.max(1, trials));
  dashboardCpuPerTrial[kind].push((1000 * (dashboardCpuSeconds() - dashboardCpu)) / Math.max(1, trials));
  const used = process.cpuUsage(own);
  ownCpuPerTrial[kind].push((used.user + used.system) / 1000 / Math.max(1, trials));
  return trials / ((Date.now() - t) / 1000);
}
// The processes of a browser (the launched one and its descendants), by Chromium's --type
// (none: the browser itself): their CPU seconds (user + system) and nice values, from /proc.
function browserProcesses(root) {
  const parent = new Map();
  const info = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1].split(" ");
      parent.set(Number(entry), Number(fields[1]));
      info.set(Number(entry), { cpu: (Number(fields[11]) + Number(fields[12])) / 100, nice: Number(fields[16]) });
    } catch {} // a process that ended meanwhile
  }
  const out = [];
  for (const [pid, data] of info) {
    let at = pid;
    while (at > 1 && at !== root) at = parent.get(at) ?? 0;
    if (at !== root) continue;
    let command = "";
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {}
    out.push({ pid, parent: parent.get(pid), type: command.match(/--type=([a-z-]+)/)?.[1] ?? "browser", command: command.split("\0")[0], ...data });
  }
  return out;
}
// Their CPU seconds (renderers apart), and the scheduling of their threads: each policy
// (0 SCHED_OTHER, 5 SCHED_IDLE) with its nice values.
function browserCpu(root) {
  const sums = { renderer: 0, other: 0, renderers: 0, threads: {} };
  for (const process of browserProcesses(root)) {
    if (process.type === "renderer") {
      sums.renderer += process.cpu;
      sums.renderers++;
    } else {
      sums.other += process.cpu;
    }
    try {
      for (const task of readdirSync(`/proc/${process.pid}/task`)) {
        const fields = readFileSync(`/proc/${process.pid}/task/${task}/stat`, "utf8").split(") ")[1].split(" ");
        const key = `policy ${fields[38]}`;
        sums.threads[key] = [...new Set([...(sums.threads[key] ?? []), Number(fields[16])])].sort((a, b) => a - b);
      }
    } catch {} // a process that ended meanwhile
  }
  return sums;
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
// Ten real study pages of the running study, each in its own context and window (its own
// renderer), watching for `seconds` with no DevTools client attached (bare_browser.mjs): the
// dispatch rate meanwhile, the pages' reads (the event streams left out, counted after their
// first reads, from each page's own resource timing) and the browser's CPU.
const READS = `performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/v1/") && !e.name.includes("/api/v1/events"))`;
async function watchWithPages(browser, kind) {
  const pages = [];
  for (let i = 0; i < 10; i++) pages.push(await browser.open(studyUrl(running), 1440, 1000));
  // On this loaded machine a navigation can fail once (a connection refused as Chromium opens
  // it): such a page is navigated again.
  for (const page of pages) {
    await eventually(async () => {
      const [protocol, built] = await browser.evaluate(page, `[location.protocol, !!document.querySelector(".stat")]`);
      if (protocol === "chrome-error:") await browser.navigate(page, studyUrl(running));
      return built;
    }, "a study page of the running study", 120000);
  }
  const root = browser.rootPid;
  if (kind === "chromium_idle") setIdle(root, true);
  await new Promise((r) => setTimeout(r, 5000));
  // Each page's clock when the count of its reads starts (its resource-timing buffer made
  // large enough to hold every read).
  const starts = [];
  for (const page of pages) starts.push(await browser.evaluate(page, `performance.setResourceTimingBufferSize(100000), performance.now()`));
  const before = browserCpu(root);
  const t = Date.now();
  const perSecond = await rate(seconds, kind);
  const after = browserCpu(root);
  const minutes = (Date.now() - t) / 60000;
  // Whether the pages kept up: the trials completed each page shows against the store's count
  // read just before (a page that gets little CPU shows an older state; one that keeps up is
  // behind by what the coordinator completes in a refresh of the mirror and an event).
  const truth = completed();
  const behind = [];
  let reads = 0;
  for (const [i, page] of pages.entries()) {
    try {
      const read = browser.evaluate(page, `[document.querySelector(".stat:nth-child(3) .value")?.textContent ?? "", ${READS}.filter((e) => e.startTime >= ${starts[i]}).length]`);
      const [shown, pageReads] = await Promise.race([read, new Promise((_, reject) => setTimeout(() => reject(new Error("no answer in 5 s")), 5000))]);
      behind.push(truth - Number(shown.split("/")[0].replace(/\D/g, "")));
      reads += pageReads;
    } catch {} // a page that did not answer within 5 s: left out
  }
  chromiumReads[kind].push(reads);
  chromiumCpu[kind].push({
    // Every renderer's CPU over the ten pages: the browser runs 21 renderers for them (each
    // context's page and another, and a spare), all counted; until the seventh round this was
    // divided by the count of renderers, which halved what a page costs.
    renderer_cpu_s_per_page_minute: (after.renderer - before.renderer) / pages.length / minutes,
    other_processes_cpu_s_per_minute: (after.other - before.other) / minutes,
    renderers: after.renderers,
    thread_nice_by_policy: after.threads,
    pages_behind_trials: behind,
  });
  if (kind === "chromium_idle") setIdle(root, false);
  for (const page of pages) await browser.closeContext(page);
  return perSecond;
}
const seconds = Number(args.seconds);
const rounds = byKind();
// Two browsers: one as it starts, and one whose processes and threads are moved to the lowest
// CPU priority (SCHED_IDLE, `chrt --idle`) while its pages watch, so that it takes only CPU the
// coordinator, the workers and everything else leave idle. Its pages are opened at normal
// priority (at the lowest, on a loaded machine, they may not open at all). nice 19 does not
// hold: Chromium sets its threads' nice values itself (0, 5 for background renderers, -8 for
// its display and compositor threads, which as root it may); it leaves the scheduling policy,
// and threads it starts inherit it. The threads' policies and nice values are recorded
// (chromium_thread_nice_by_policy).
function setIdle(root, idle) {
  for (const { pid } of browserProcesses(root)) {
    try {
      execFileSync("chrt", [idle ? "--idle" : "--other", "--all-tasks", "--pid", "0", String(pid)], { stdio: "ignore" });
    } catch {} // a process that ended meanwhile
  }
}
results.sched_autogroup_enabled = existsSync("/proc/sys/kernel/sched_autogroup_enabled") ? readFileSync("/proc/sys/kernel/sched_autogroup_enabled", "utf8").trim() : "absent";
// The pages' browsers: started with the arguments playwright gave the first part's browser
// (the same flags), driven without a DevTools client while they watch (bare_browser.mjs).
const firstBrowser = browserProcesses(process.pid).find((p) => p.parent === process.pid && p.type === "browser" && /chrom/.test(p.command));
if (!firstBrowser) throw new Error("the first part's browser process was not found");
const browserArgs = argumentsOf(firstBrowser.pid);
results.chromium_arguments = browserArgs;
const pagesBrowser = new BareBrowser("/usr/bin/chromium", browserArgs);
const idlePagesBrowser = new BareBrowser("/usr/bin/chromium", browserArgs);
// Each round measures every kind once, in an order rotated from round to round, so that each
// kind takes each place in turn: the running study grows all along, and whatever that or the
// machine's load changes over a round does not always fall on the same kind.
const measure = {
  none: () => rate(seconds, "none"),
  node: async () => {
    const controller = new AbortController();
    for (let i = 0; i < 10; i++) nodeDashboard(server.url, running, controller.signal);
    await new Promise((r) => setTimeout(r, 3000));
    const measured = await rate(seconds, "node");
    controller.abort();
    return measured;
  },
  chromium_idle: () => watchWithPages(idlePagesBrowser, "chromium_idle"),
  chromium: () => watchWithPages(pagesBrowser, "chromium"),
};
results.orders = [];
for (let round = 0; round < Number(args.rounds); round++) {
  const order = [...KINDS.slice(round % KINDS.length), ...KINDS.slice(0, round % KINDS.length)];
  results.orders.push(order);
  for (const kind of order) {
    // What the previous kind started settles; before "none", the dashboard too: its mirror
    // follows the engine for 20 s after the last request or stream (Mirror::Options::idle_after).
    await new Promise((r) => setTimeout(r, kind === "none" ? 22000 : 8000));
    rounds[kind].push(await measure[kind]());
  }
}
idlePagesBrowser.close();
pagesBrowser.close();
await browser.close();
results.dispatch_rate = rounds;
results.coordinator_cpu_ms_per_trial = cpuPerTrial;
results.dashboard_threads_cpu_ms_per_trial = dashboardCpuPerTrial;
results.benchmark_process_cpu_ms_per_trial = ownCpuPerTrial;
results.node_clients_streamed = streamed;
results.chromium_pages_reads_per_round = chromiumReads;
results.chromium_cpu = chromiumCpu;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pageMedian = (key) => median(pageRuns.map((r) => r[key]));
// Each round's rate against that round's "none" (the machine's load moves all of a round's
// rates together), as a percentage change: the median over the rounds.
const change = (kind) => median(rounds[kind].map((r, i) => (100 * (r - rounds.none[i])) / rounds.none[i]));
const round2 = (x) => Math.round(x * 100) / 100;
const summary = {
  first_paint_ms: pageMedian("first_paint_ms"),
  interactive_ms: pageMedian("interactive_ms"),
  bytes_until_interactive: pageMedian("bytes_until_interactive"),
  sort_100k_ms: pageMedian("sort_ms"),
  dispatch_per_s: Object.fromEntries(KINDS.map((kind) => [kind, round2(median(rounds[kind]))])),
  dispatch_change_vs_none_percent: Object.fromEntries(KINDS.slice(1).map((kind) => [kind, round2(change(kind))])),
  coordinator_cpu_ms_per_trial: Object.fromEntries(KINDS.map((kind) => [kind, round2(median(cpuPerTrial[kind]))])),
  dashboard_threads_cpu_ms_per_trial: Object.fromEntries(KINDS.map((kind) => [kind, round2(median(dashboardCpuPerTrial[kind]))])),
  // The coordinator's CPU per trial against no dashboard's, round by round (the median): what
  // ten watchers cost the coordinator itself, whatever the browsers beside it take.
  coordinator_cpu_change_vs_none_percent: Object.fromEntries(KINDS.slice(1).map((kind) => [kind, round2(median(cpuPerTrial[kind].map((c, i) => (100 * (c - cpuPerTrial.none[i])) / cpuPerTrial.none[i])))])),
  benchmark_process_cpu_ms_per_trial: Object.fromEntries(KINDS.map((kind) => [kind, round2(median(ownCpuPerTrial[kind]))])),
  node_clients_events: streamed.events,
  node_clients_bytes_per_event: Math.round(streamed.bytes / Math.max(1, streamed.events)),
  chromium_renderer_cpu_s_per_page_minute: Object.fromEntries(["chromium_idle", "chromium"].map((kind) => [kind, round2(median(chromiumCpu[kind].map((c) => c.renderer_cpu_s_per_page_minute)))])),
  chromium_other_processes_cpu_s_per_minute: Object.fromEntries(["chromium_idle", "chromium"].map((kind) => [kind, round2(median(chromiumCpu[kind].map((c) => c.other_processes_cpu_s_per_minute)))])),
  chromium_thread_nice_by_policy: Object.fromEntries(["chromium_idle", "chromium"].map((kind) => [kind, chromiumCpu[kind][0]?.thread_nice_by_policy])),
  chromium_pages_behind_trials_median: Object.fromEntries(["chromium_idle", "chromium"].map((kind) => [kind, median(chromiumCpu[kind].flatMap((c) => c.pages_behind_trials))])),
  chromium_pages_reads_per_round: chromiumReads,
};
results.summary = summary;
results.machine.load_average_end = loadavg();
console.log(JSON.stringify({ machine: results.machine, summary }, null, 2));
if (args.out) writeFileSync(args.out, JSON.stringify(results, null, 2));
stopAll();
process.exit(0);
