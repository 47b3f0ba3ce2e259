// The dashboard end to end in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): a real coordinator and two workers run a sim ASHA study; each page must
// show it and update live without a reload, within 2 s of the change (trials committed to the
// store, states in a worker's cache), and stop a study; the page must reconnect on its own
// after the coordinator restarts. Screenshots go to $HIPPO_ARTIFACTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ARTIFACTS, api, eventually, playwright, startServer, startWorker, stopAll, submit } from "./harness.mjs";

const SPEC = path.join(path.dirname(fileURLToPath(import.meta.url)), "asha_sim.yaml");
let server, browser, page, studyId;

before(async () => {
  server = await startServer();
  startWorker(server, "w1");
  startWorker(server, "w2");
  studyId = submit(server, SPEC);
  browser = await playwright().chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  page.on("dialog", (dialog) => dialog.accept());
  page.on("pageerror", (error) => console.error("page error:", error));
});

after(async () => {
  await browser?.close();
  stopAll();
});

const text = async (selector) => (await page.locator(selector).first().textContent()) ?? "";

// The share of the study's trial budget that ended (the progress both study pages show, in %)
// as the coordinator's store holds it (SQLite takes readers beside the coordinator's writer):
// the moment a change is committed, before any view of it.
const BUDGET = 648; // asha_sim.yaml's max_trials
function progressInStore(study) {
  const sql = `select count(*) from trials where study_id = '${study}' and state != 1`;
  return (100 * Number(execFileSync("sqlite3", [server.db, sql]).toString().trim())) / BUDGET;
}

// How long the page takes to show a growing number: for `ms`, `source()` (the number at its
// source) is read every 150 ms, and every change of the page's DOM records the number the
// element at `selector` shows (the first match of `pattern`); each value the source reached is
// matched to the first moment the page showed it (less `rounding`, the page's own) or more,
// without a reload. The lags in ms.
async function liveLags(selector, pattern, rounding, source, ms = 9000) {
  await page.evaluate(([selector, pattern]) => {
    window.__shown = [];
    const read = () => {
      const match = new RegExp(pattern).exec(document.querySelector(selector)?.textContent ?? "");
      if (match) window.__shown.push([Date.now(), Number(match[1].replace(/,/g, ""))]);
    };
    read();
    window.__observer?.disconnect();
    window.__observer = new MutationObserver(read);
    window.__observer.observe(document.body, { subtree: true, childList: true, characterData: true });
  }, [selector, pattern]);
  const reached = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const value = await source();
    if (reached.length === 0 || value > reached.at(-1)[1]) reached.push([Date.now(), value]);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  // The page may show the last values after the sampling ended.
  await page.waitForTimeout(2500);
  const shown = await page.evaluate(() => window.__shown);
  return reached.slice(1).map(([at, value]) => {
    const seen = shown.find(([, v]) => v >= value - rounding);
    return seen ? Math.max(0, seen[0] - at) : Infinity;
  });
}

// A screenshot of the whole page as it is now: the study page draws a card only while it is on
// screen (a chart, the stage tree and the trial table out of view keep what is pushed to them
// and draw it once scrolled to), and a full-page screenshot does not scroll. So each card is
// scrolled into view first, long enough to be drawn (two frames), then the page back to the top.
async function fullPageScreenshot(file) {
  await page.evaluate(async () => {
    const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
    for (const card of document.querySelectorAll(".card")) {
      card.scrollIntoView();
      await frame();
      await frame();
    }
    window.scrollTo(0, 0);
    await frame();
  });
  await page.screenshot({ path: path.join(ARTIFACTS, file), fullPage: true });
}

// The issue's goal: the page shows a change within 2 s (the median of the changes seen; at
// least two changes seen, every one shown in the end).
function assertLive(lags, what) {
  console.log(`${what}: page lags ${lags.map((l) => `${l} ms`).join(", ")}`);
  assert.ok(lags.length >= 2, `${what}: the source changed ${lags.length} times while watched`);
  assert.ok(lags.every(Number.isFinite), `${what}: a change never reached the page`);
  const sorted = [...lags].sort((a, b) => a - b);
  assert.ok(sorted[Math.floor(sorted.length / 2)] <= 2000, `${what}: median lag over 2 s`);
}

test("the studies page lists the running study and updates it live", async () => {
  // The URL the server printed lets the browser in once; the cookie it sets does from then on.
  await page.goto(server.loginUrl);
  await page.goto(server.url);
  const row = page.locator(`tr[data-study="${studyId}"]`);
  await row.waitFor({ timeout: 15000 });
  assert.match(await row.textContent(), /dashboard-asha/);
  await page.waitForSelector("#live[data-state=live]");
  const before = await row.locator("td").nth(5).textContent();
  // Without a reload, the steps trained move as the study runs.
  await eventually(async () => (await row.locator("td").nth(5).textContent()) !== before, "the steps trained to change live");
  // Trials that end reach the page (its progress, in whole %) within 2 s of their commit.
  assertLive(await liveLags(`tr[data-study="${studyId}"] .progress-cell`, "([\\d.]+) %", 0.5, () => progressInStore(studyId)), "studies page");
  await page.screenshot({ path: path.join(ARTIFACTS, "studies.png") });
});

test("the study page shows curves, history, parameters, the stage tree and the trials, live", async () => {
  await page.click(`a[href="#/study/${studyId}"]`);
  await page.waitForSelector("#curves canvas");
  await page.waitForSelector("#history canvas");
  await page.waitForSelector("#parallel canvas");
  await page.waitForSelector("#trials [data-trial]");
  // The tree has stages drawn.
  await eventually(async () => /^[1-9][\d,]* of [\d,]+ stages shown/.test(await text("#tree .tree-info")), "the tree to show stages");
  const stepsBefore = await text(".stat:nth-child(4) .value");
  await eventually(async () => (await text(".stat:nth-child(4) .value")) !== stepsBefore, "steps trained to move live", 20000);
  // Steps trained reach the page within 2 s of the coordinator's JSON showing them (trials
  // end in bursts here, the steps trained move all along).
  const executed = async () => Number((await api(server.url, `studies/${studyId}`)).body.study?.steps?.executed_steps ?? 0);
  assertLive(await liveLags(".stat:nth-child(4) .value", "([\\d,]+)", 0, executed), "study page");
  // While it watches, the page asks for nothing: the event stream pushes what changed (the
  // summary, trials, curves, history, parameters, savings, tree), and the page still moves.
  const reads = [];
  const count = (request) => {
    if (request.url().includes("/api/v1/") && !request.url().includes("/api/v1/events")) reads.push(request.url());
  };
  page.on("request", count);
  const rowsBefore = await text("#trials .ttools");
  const stepsWatched = await text(".stat:nth-child(4) .value");
  await page.waitForTimeout(5000);
  page.off("request", count);
  assert.deepEqual(reads, [], "the study page read while it watched");
  assert.notEqual(await text(".stat:nth-child(4) .value"), stepsWatched, "the summary moved meanwhile");
  console.log(`trial table: ${rowsBefore} -> ${await text("#trials .ttools")}`);
  // Learning curves: the leading trials' curves drawn over the density.
  await eventually(async () => /top [1-9]/.test(await text("#curves .legend")), "the leading trials' curves", 30000);
  // Sort the table by objective (best first) and select its first row: the schedule is drawn.
  await page.click('#trials [data-column="objective"]');
  await eventually(async () => (await text("#trials .thead")).includes("▼"), "the objective column sorted");
  await page.locator("#trials .tbody [data-trial]").first().click();
  await page.waitForSelector("#schedule canvas");
  assert.match(await text("#schedule"), /trial \d+/);
  // Filter by state: only running rows remain.
  await page.fill('[data-filter="state"]', "running");
  await eventually(async () => {
    const states = await page.locator("#trials .tbody .badge").allTextContents();
    return states.length > 0 && states.every((s) => s === "running");
  }, "the table filtered to running trials", 30000);
  await page.fill('[data-filter="state"]', "");
  // Find a trial in the tree: its path is highlighted.
  await page.fill("#tree input[type=search]", "0");
  await page.press("#tree input[type=search]", "Enter");
  await page.waitForTimeout(500);
  await fullPageScreenshot("study.png");
});

test("the study page draws its charts on screen, and one below the fold only once scrolled to, within 2 s", async () => {
  // A study of its own, so that it runs all along this test.
  const fresh = submit(server, SPEC);
  await page.goto(`${server.url}#/study/${fresh}`);
  await page.evaluate(() => window.scrollTo(0, 0));
  // The charts on screen show a drawing (each is drawn elsewhere and handed to the canvas shown
  // as a bitmap: charts/surface.ts): their canvases hold pixels.
  const inked = (selector) =>
    page.evaluate((selector) => {
      const canvas = document.querySelector(selector);
      if (!canvas || canvas.width === 0 || canvas.height === 0) return 0;
      const copy = document.createElement("canvas");
      copy.width = canvas.width;
      copy.height = canvas.height;
      const ctx = copy.getContext("2d");
      ctx.drawImage(canvas, 0, 0);
      const pixels = ctx.getImageData(0, 0, copy.width, copy.height).data;
      let count = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) count++;
      return count;
    }, selector);
  for (const selector of ["#curves canvas", "#history canvas", "#parallel canvas"]) {
    await eventually(async () => (await inked(selector)) > 500, `a drawing in ${selector}`, 20000);
  }
  // The savings chart, below the fold (the viewport is 1000 px high), is drawn by the first
  // read, then not again while out of view, though its data move (pushed by the stream).
  const drawnVersion = () => page.evaluate(() => Number(document.querySelector("#savings .chart")?.dataset.version ?? 0));
  const serverVersion = async () => Number((await api(server.url, `studies/${fresh}/savings`)).body.version ?? 0);
  await eventually(async () => (await drawnVersion()) > 0, "the savings chart drawn by the first read", 20000);
  assert.ok(await page.evaluate(() => document.querySelector("#savings").getBoundingClientRect().top > innerHeight), "the savings card is below the fold");
  // The page's own reads draw wherever the chart is: a read asked for twice at the start (the
  // study not in the dashboard yet, read again 1.5 s later) runs once more 2 s after the first.
  await page.waitForTimeout(2500);
  const first = await drawnVersion();
  await eventually(async () => (await serverVersion()) > first, "the study's savings to move", 20000);
  await page.waitForTimeout(3000); // an event with the savings (every 2 s) came meanwhile
  assert.equal(await drawnVersion(), first, "the savings chart was drawn again out of view");
  // Scrolled into view, it shows what the stream pushed meanwhile within 2 s.
  const scrolled = Date.now();
  await page.evaluate(() => document.querySelector("#savings").scrollIntoView());
  await eventually(async () => (await drawnVersion()) > first, "the savings chart to catch up in view", 2000);
  console.log(`savings chart caught up ${Date.now() - scrolled} ms after it came into view`);
  assert.ok((await inked("#savings canvas")) > 500, "the savings chart shows a drawing");
  await page.evaluate(() => window.scrollTo(0, 0));
});

test("the stage tree below the fold draws nothing new until scrolled to, then catches up within 2 s", async () => {
  // A study of its own, so that its stages grow all along this test.
  const fresh = submit(server, SPEC);
  // The tree's count of stages ("N of TOTAL stages shown"), as the page shows it and as the
  // coordinator has it.
  const shownStages = async () => Number(((await text("#tree .tree-info")).match(/of ([\d,]+)/)?.[1] ?? "0").replace(/,/g, ""));
  const stages = async () => Number((await api(server.url, `studies/${fresh}/tree`)).body.total_nodes ?? 0);
  // Opened once the study has stages: the page's first read draws the tree wherever it is;
  // the windows pushed later are drawn in view only.
  await eventually(async () => (await stages()) > 0, "the study's first stages", 30000);
  await page.goto(`${server.url}#/study/${fresh}`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await eventually(async () => (await shownStages()) > 0, "the tree's first read", 20000);
  assert.ok(await page.evaluate(() => document.querySelector("#tree canvas").getBoundingClientRect().top > innerHeight), "the tree is below the fold");
  await page.waitForTimeout(2500); // the first reads' second round (the study new to the dashboard)
  const before = await shownStages();
  await eventually(async () => (await stages()) > before, "the study's stages to grow", 30000);
  await page.waitForTimeout(2500); // an event with the tree's window came meanwhile
  assert.equal(await shownStages(), before, "the stage tree drew new stages out of view");
  // Scrolled into view, it shows at least what the coordinator had before the scroll, within 2 s.
  const target = await stages();
  const scrolled = Date.now();
  await page.evaluate(() => document.querySelector("#tree").scrollIntoView());
  await eventually(async () => (await shownStages()) >= target, "the stage tree to catch up in view", 2000);
  console.log(`stage tree caught up ${Date.now() - scrolled} ms after it came into view (${before} -> ${await shownStages()} stages)`);
  await page.evaluate(() => window.scrollTo(0, 0));
});

test("the workers page shows both workers and what they run", async () => {
  await page.click('a[data-nav="workers"]');
  await page.waitForSelector('tr[data-worker="w1"]');
  await page.waitForSelector('tr[data-worker="w2"]');
  assert.match(await text('tr[data-worker="w1"]'), /states?/);
  // The fork cache: the states the workers hold, each linked to the study it belongs to, as
  // many as the API lists (at most 64 a worker, the count of all of them beside).
  const chip = `tr[data-worker] .fork-cache a.chip[href="#/study/${studyId}"]`;
  await eventually(async () => (await page.locator(chip).count()) > 0, "a worker's fork cache to show a state of the study");
  // Only this study has run yet: every state listed is one of its stages.
  const workers = await eventually(async () => {
    const rows = (await api(server.url, "workers")).body.workers;
    const entries = rows.flatMap((row) => row.fork_cache ?? []);
    return entries.length > 0 && entries.every((entry) => entry.study_id === studyId) && rows;
  }, "the API to list the workers' cached states with their study");
  for (const row of workers) {
    const cache = row.fork_cache ?? [];
    assert.ok(cache.length <= 64 && cache.length <= Number(row.worker.cached_states ?? 0), `${cache.length} states listed of ${row.worker.cached_states}`);
  }
  // The states a worker holds reach the page within 2 s of the coordinator's JSON showing them.
  const cachedStates = async () => Number((await api(server.url, "workers")).body.workers.find((row) => row.worker.worker_id === "w1")?.worker.cached_states ?? 0);
  assertLive(await liveLags('tr[data-worker="w1"] .fork-cache .num', "([\\d,]+) state", 0, cachedStates), "workers page");
  // Utilisation over time: both workers trained all along (the study has work for two), and
  // the buckets drawn average to the utilisation shown.
  for (const row of (await api(server.url, "workers")).body.workers) {
    const busy = (row.samples ?? []).map((sample) => Number(sample.busy ?? 0));
    assert.ok(busy.length > 0, `${row.worker.worker_id}: no utilisation samples`);
    const mean = busy.reduce((a, b) => a + b, 0) / busy.length;
    assert.ok(Number(row.utilisation) > 0.5, `${row.worker.worker_id}: utilisation ${row.utilisation}`);
    assert.ok(Math.abs(mean - Number(row.utilisation)) < 0.02, `${row.worker.worker_id}: buckets average ${mean}, utilisation ${row.utilisation}`);
  }
  const chips = await page.locator("tr[data-worker] .fork-cache .chip").allTextContents();
  assert.ok(chips.length > 0 && chips.every((chip) => /^stage \d+\/\d+ · step [\d,]+$/.test(chip)), `chips: ${chips}`);
  await page.screenshot({ path: path.join(ARTIFACTS, "workers.png") });
});

test("a study is stopped from its page", async () => {
  const fresh = submit(server, SPEC);
  await page.goto(`${server.url}#/study/${fresh}`);
  await page.waitForSelector("#stop-study:not([hidden])");
  await page.click("#stop-study");
  await eventually(async () => (await text(".study-head .badge")) === "stopped", "the page to show the study stopped");
  assert.ok(await page.locator("#stop-study").isHidden(), "the stop button is gone once stopped");
  // The API reads the dashboard's mirror, refreshed at once after a stop (later on a loaded machine); the
  // page shows the stop's own answer at once.
  await eventually(async () => (await api(server.url, `studies/${fresh}`)).body.study.state === "STUDY_STOPPED", "the API to show the study stopped");
  await fullPageScreenshot("study-stopped.png");
});

test("the page reconnects on its own after the coordinator restarts", async () => {
  await page.goto(`${server.url}#/`);
  await page.waitForSelector("#live[data-state=live]");
  const port = new URL(server.url).port;
  const exited = new Promise((resolve) => server.child.once("exit", resolve));
  server.child.kill("SIGTERM");
  await eventually(async () => (await page.getAttribute("#live", "data-state")) === "reconnecting", "the page to notice the lost connection");
  await exited; // the store and the port are free again
  const again = await startServer({ dir: server.dir, http: `127.0.0.1:${port}` });
  server = { ...again };
  await page.waitForSelector("#live[data-state=live]", { timeout: 20000 });
  // A study submitted after the restart appears without a reload.
  // (The restarted coordinator may still be recovering: a submit can need another try.)
  const second = await eventually(async () => submit(server, SPEC), "a study submitted to the restarted coordinator");
  await page.locator(`tr[data-study="${second}"]`).waitFor({ timeout: 10000 });
});
