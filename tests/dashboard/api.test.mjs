// The dashboard's JSON API against a real coordinator running a sim study: paging, sorting and
// filtering of trials, incremental reads (since a version), the change long poll, the event
// stream that pushes a watched study's page and the workers', the stop guard, the token, and
// plain HTTP refused off loopback.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { HIPPO, api, eventually, startServer, startWorker, stopAll, submit } from "./harness.mjs";

const SPEC = path.join(path.dirname(fileURLToPath(import.meta.url)), "asha_sim.yaml");
let server, studyId;

before(async () => {
  server = await startServer();
  startWorker(server, "w1");
  studyId = submit(server, SPEC);
  // Enough trials, some of them with an objective, for the reads below to mean something.
  await eventually(async () => {
    const page = (await api(server.url, `studies/${studyId}/trials?page_size=1&filter=objective:>0`)).body;
    return Number(page.total ?? 0) >= 40 && Number(page.matching ?? 0) >= 5;
  }, "40 trials, 5 with an objective", 60000);
});

after(stopAll);

test("trial pages cover every trial once, in the order asked", async () => {
  const seen = new Set();
  let token = "";
  let pages = 0;
  let total = 0;
  do {
    const { status, body } = await api(server.url, `studies/${studyId}/trials?page_size=7&page_token=${token}`);
    assert.equal(status, 200);
    total = Number(body.total);
    assert.ok(body.trials.length <= 7, "a page holds at most page_size trials");
    for (const row of body.trials) {
      assert.ok(!seen.has(row.trial.id), `trial ${row.trial.id} appears on two pages`);
      seen.add(row.trial.id);
    }
    token = body.next_page_token ?? "";
    pages++;
  } while (token && pages < 1000);
  // Trials are added while the study runs: every trial of the first read is there.
  assert.ok(seen.size >= total - 0 && seen.size >= 40, `pages gave ${seen.size} trials of ${total}`);
  assert.ok(pages > 1, "a study of 40+ trials needs several pages of 7");
});

test("trials sort by any column and filter by expressions", async () => {
  const sorted = (await api(server.url, `studies/${studyId}/trials?page_size=200&sort=objective&desc=true`)).body;
  const values = sorted.trials.filter((r) => r.trial.has_objective_value).map((r) => Number(r.trial.objective_value));
  assert.ok(values.length > 0);
  for (let i = 1; i < values.length; i++) assert.ok(values[i - 1] >= values[i], "objective descending");
  const parameter = (await api(server.url, `studies/${studyId}/trials?page_size=200&sort=param:weight_decay`)).body;
  const decays = parameter.trials.map((r) => Number(r.trial.parameters.weight_decay.scalar));
  for (let i = 1; i < decays.length; i++) assert.ok(decays[i - 1] <= decays[i], "weight_decay ascending");
  const filtered = (await api(server.url, `studies/${studyId}/trials?page_size=1000&filter=param:weight_decay:<0.0002;state:running`)).body;
  for (const row of filtered.trials) {
    assert.ok(Number(row.trial.parameters.weight_decay.scalar) < 2e-4);
    assert.equal(row.trial.state, "TRIAL_RUNNING");
  }
  assert.equal(Number(filtered.matching ?? 0), filtered.trials.length);
  const bad = await api(server.url, `studies/${studyId}/trials?filter=speed:>1`);
  assert.equal(bad.status, 400);
  assert.match(bad.body.message, /filter: unknown column 'speed'.*param:weight_decay/);
});

test("savings compare like with like: the work done so far, not every trial's full target", async () => {
  const path = `studies/${studyId}/savings`;
  await eventually(async () => ((await api(server.url, path)).body.points ?? []).length > 0, "a savings point");
  const points = (await api(server.url, path)).body.points;
  const last = points[points.length - 1];
  // Read after the point: the work done so far only grows.
  const steps = (await api(server.url, `studies/${studyId}`)).body.study.steps;
  assert.ok(Number(last.trial_steps) <= Number(steps.reached_trial_steps), "the point counts reached steps");
  assert.ok(Number(steps.reached_trial_steps) < Number(steps.trial_steps), "a running ASHA study has targets ahead");
  assert.ok(Number(last.executed_steps) <= Number(last.trial_steps), "never more than trial by trial");
});

// The events of GET events?QUERY, as raw texts, parsed and when they came, until
// `enough(events)` or `ms`.
async function readEvents(query, enough, ms = 20000) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  const events = [];
  try {
    const response = await fetch(new URL(`api/v1/events?${query}`, server.url), { signal: controller.signal, headers: { "x-hippo-token": server.token } });
    assert.equal(response.status, 200);
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of response.body) {
      buffered += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const text = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = text.split("\n").find((line) => line.startsWith("data: "));
        if (data) events.push({ text, data: JSON.parse(data.slice(6)), at: Date.now() });
      }
      if (enough(events)) break;
    }
  } catch (error) {
    if (error.name !== "AbortError") throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return events;
}

test("a stream watching a study pushes its page's parts as they change, and the workers' page", async () => {
  const trialEvents = (events) => events.filter((e) => e.data.study?.trials);
  const events = await readEvents(`study=${studyId}&workers=true`, (events) => trialEvents(events).length >= 3 && events.some((e) => e.data.workers_page));
  const withParts = events.filter((e) => e.data.study);
  assert.ok(withParts.length >= 3, `${withParts.length} events with the study's parts`);
  // The first carries every part of the page, each as its GET answers it.
  const first = withParts[0].data.study;
  assert.equal(first.study_id, studyId);
  assert.ok(Number(first.trials.total) >= 40 && first.trials.trials.length > 0, "the trials");
  // Bounded whatever the number of changes: 20 rows at most, and then every changed trial's
  // number in ranges (the first event: every trial).
  for (const parts of withParts.map((e) => e.data.study).filter((p) => p.trials)) {
    assert.ok(parts.trials.trials.length <= 20, `${parts.trials.trials.length} rows pushed`);
    if (!parts.trials.next_page_token) continue;
    const ranges = (parts.changed_trials ?? []).map(Number);
    assert.ok(ranges.length >= 2 && ranges.length % 2 === 0, "changed trials as ranges");
    for (const row of parts.trials.trials) {
      const id = Number(row.trial.id ?? 0);
      assert.ok(ranges.some((low, k) => k % 2 === 0 && id >= low && id <= ranges[k + 1]), `trial ${id} is in a range`);
    }
  }
  assert.deepEqual(first.changed_trials.map(Number), [0, Number(first.trials.total) - 1]);
  assert.equal(first.curves.completed_density.length, Number(first.curves.step_bins) * Number(first.curves.value_bins));
  assert.ok(first.history.trial.length > 0, "the history");
  assert.deepEqual(first.parameters.axes.map((a) => a.name).sort(), ["lr", "optimizer", "weight_decay"]);
  assert.ok(Array.isArray(first.savings.points), "the savings");
  assert.ok(first.tree.nodes.length > 0, "the tree's first window");
  // Later ones carry the trials changed since the stream's previous event, and only those.
  const firstTrials = events.findIndex((e) => e.data.study?.trials);
  let later = 0;
  for (let k = firstTrials + 1; k < events.length; k++) {
    const trials = events[k].data.study?.trials;
    if (!trials) continue;
    later++;
    const previous = Number(events[k - 1].data.version);
    for (const row of trials.trials ?? []) {
      assert.ok(Number(row.version) > previous, `trial ${row.trial.id} at ${row.version}, not changed since the previous event (${previous})`);
    }
    assert.ok((trials.trials ?? []).length < Number(trials.total), "a running study's changes, not all its trials");
  }
  assert.ok(later >= 2, `${later} events with the trials changed`);
  // The study's summary rides along; the workers' page came (with w1) when the workers changed.
  assert.ok(events.some((e) => (e.data.rows ?? []).some((row) => row.study.id === studyId)));
  const workers = events.find((e) => e.data.workers_page).data.workers_page;
  assert.ok(workers.workers.some((row) => row.worker.worker_id === "w1"));
  // A stream that watches nothing in particular gets no parts.
  const plain = await readEvents("", (events) => events.length >= 2);
  assert.ok(plain.length >= 1 && plain.every((e) => !e.data.study && !e.data.workers_page));
  assert.equal((await api(server.url, "events?workers=maybe")).status, 400);
});

test("streams in the same state get the same event, made once", async () => {
  // Two streams from one version, watching the same study: their first events (at the same
  // version) are one text. The version may move between their wake-ups: try a few times.
  let same = false;
  for (let attempt = 0; attempt < 5 && !same; attempt++) {
    const since = Number((await api(server.url, `studies/${studyId}`)).body.version);
    const [a, b] = await Promise.all([1, 2].map(() => readEvents(`study=${studyId}&since=${since}`, (events) => events.length >= 1)));
    if (a[0].data.version !== b[0].data.version) continue;
    assert.equal(a[0].text, b[0].text);
    same = true;
  }
  assert.ok(same, "two streams never got their first event at the same version");
});

// The store's count of metric points (each one a change of a trial's view), read beside the
// coordinator (SQLite takes readers beside its writer): the changes as they are committed.
function metricPoints() {
  return Number(execFileSync("sqlite3", [server.db, "select count(*) from metrics"]).toString().trim());
}

test("a stream coalesces changes: at most one event a tick of 1.5 s, and one within 2 s of a change", async () => {
  const before = metricPoints();
  const started = Date.now();
  const events = await readEvents(`study=${studyId}`, () => false, 8000);
  const seconds = (Date.now() - started) / 1000;
  const changes = metricPoints() - before;
  console.log(`${changes} metric points committed in ${seconds.toFixed(1)} s: ${events.length} events`);
  // Many changes, few events: one at the start, then at most one a tick of the mirror's clock
  // (Mirror::Options::period, 1.5 s) whatever the rate of changes (a client slowed down by the
  // machine's load may read two at once, so their gaps are judged by the median).
  assert.ok(events.length <= Math.ceil(seconds / 1.5) + 1, `${events.length} events in ${seconds.toFixed(1)} s`);
  assert.ok(changes >= 2 * events.length, `${changes} changes for ${events.length} events: not coalesced`);
  const gaps = events.slice(1).map((event, i) => event.at - events[i].at);
  const median = [...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)];
  assert.ok(median >= 1400, `events a median ${median} ms apart`);
  // Still live: the study changes all along, and the events came within 2 s of each other (nine
  // in ten: a client starved by the machine's load reads some late).
  assert.ok(events.length >= 4, `${events.length} events while the study ran`);
  const slow = [...gaps].sort((a, b) => a - b)[Math.floor(gaps.length * 0.9)];
  assert.ok(slow <= 2000, `events ${slow} ms apart (90th percentile) while the study changed`);
});

test("a read since a version returns only what changed after it", async () => {
  const first = (await api(server.url, `studies/${studyId}/trials?page_size=1000`)).body;
  const version = Number(first.version);
  // The long poll answers once something changed after that version (the study, or first
  // only the workers).
  let change;
  let at = version;
  for (let polls = 0; polls < 20; polls++) {
    change = (await api(server.url, `changes?since=${at}&timeout_ms=20000`)).body;
    assert.ok(Number(change.version) > at, "a long poll answers with a newer version");
    at = Number(change.version);
    if ((change.studies ?? []).includes(studyId)) break;
  }
  assert.ok(change.studies.includes(studyId));
  const since = (await api(server.url, `studies/${studyId}/trials?page_size=1000&since=${version}`)).body;
  assert.ok(since.trials.length > 0, "a running study changes some trials");
  assert.ok(since.trials.length < Number(since.total), "but not all of them");
  for (const row of since.trials) assert.ok(Number(row.version) > version, "only rows changed after the version");
  // Once the study is stopped and read, nothing changes after the latest version.
  const stop = await api(server.url, `studies/${studyId}/stop`, { method: "POST", headers: { "X-Hippo-Dashboard": "1" } });
  assert.equal(stop.status, 200);
  assert.equal(stop.body.state, "STUDY_STOPPED");
  const settled = await eventually(async () => {
    const row = (await api(server.url, `studies/${studyId}`)).body;
    return row.study.state === "STUDY_STOPPED" ? row : null;
  }, "the mirror to see the stop");
  await new Promise((r) => setTimeout(r, 1500));
  const latest = Number((await api(server.url, `studies/${studyId}`)).body.version);
  assert.ok(latest >= Number(settled.version));
  const none = (await api(server.url, `studies/${studyId}/trials?since=${latest}`)).body;
  assert.equal((none.trials ?? []).length, 0);
  const studies = (await api(server.url, `studies?since=${latest}`)).body;
  assert.equal((studies.studies ?? []).length, 0);
});

test("a stop without the dashboard's header is refused", async () => {
  const { status, body } = await api(server.url, `studies/${studyId}/stop`, { method: "POST" });
  assert.equal(status, 403);
  assert.match(body.message, /X-Hippo-Dashboard/);
});

test("aggregates stay bounded: curves density, history bins, a parameter sample", async () => {
  const curves = (await api(server.url, `studies/${studyId}/curves?trials=0,1`)).body;
  assert.equal(curves.completed_density.length, Number(curves.step_bins) * Number(curves.value_bins));
  assert.ok(curves.best.length > 0 && curves.best.length <= 10);
  assert.deepEqual(curves.selected.map((c) => Number(c.trial_id ?? 0)), [0, 1]);
  const history = (await api(server.url, `studies/${studyId}/history`)).body;
  assert.ok(history.trial.length <= 1000);
  const parameters = (await api(server.url, `studies/${studyId}/parameters`)).body;
  assert.deepEqual(parameters.axes.map((a) => a.name).sort(), ["lr", "optimizer", "weight_decay"]);
  assert.equal(parameters.values.length, parameters.trial_ids.length * (parameters.axes.length + 1));
  // The charts' values come to 6 significant digits (a whole double's JSON takes up to 17).
  for (const [what, valuesOf] of [["history", (b) => [...b.low, ...b.high, ...b.best_so_far]], ["parameters", (b) => b.values], ["curves", (b) => b.best.flatMap((c) => c.values)]]) {
    const values = valuesOf((await api(server.url, `studies/${studyId}/${what}`)).body).filter((v) => typeof v === "number" && v !== 0);
    const digits = values.map((v) => v.toExponential().split("e")[0].replace(/[-.]/g, "").length);
    assert.ok(values.length > 0 && Math.max(...digits) <= 6, `${what}: values of up to ${Math.max(...digits)} significant digits`);
  }
  const tree = (await api(server.url, `studies/${studyId}/tree?depth=2&max_children=2&trial=5`)).body;
  assert.ok(tree.nodes.length >= 1 && Number(tree.total_nodes) >= tree.nodes.length);
  assert.ok(tree.highlighted.length >= 1, "trial 5's path is highlighted");
  const ids = new Set(tree.nodes.map((n) => n.stage?.id ?? "0"));
  for (const stage of tree.highlighted) assert.ok(ids.has(stage), "the highlighted path is in the window");
});

test("the dashboard needs the coordinator's token, from a header, a bearer or the login URL's cookie", async () => {
  const port = new URL(server.url).port;
  const token = server.token;
  assert.match(token, /^[0-9a-f]{64}$/, "the token the server made, carried by the URL it printed");
  assert.equal((await api(server.url, "studies", { token: "" })).status, 401);
  assert.equal((await api(server.url, "studies", { token: "wrong" })).status, 401);
  assert.equal((await api(server.url, "studies", { headers: { Authorization: `Bearer ${token}` } })).status, 200);
  assert.equal((await fetch(server.url)).status, 401, "the page itself needs the token too");
  const login = await fetch(server.loginUrl);
  assert.equal(login.status, 200);
  const cookie = login.headers.get("set-cookie");
  assert.match(cookie, new RegExp(`^hippo_token_${port}=${token}; Path=/; HttpOnly; SameSite=Strict`));
  assert.equal((await api(server.url, "studies", { headers: { Cookie: cookie.split(";")[0] } })).status, 200);
  assert.equal((await api(server.url, "studies", { headers: { Cookie: `hippo_token_${port}=wrong` } })).status, 401);
});

test("off loopback plain HTTP is refused; --insecure serves it to anyone, after a warning", async () => {
  const refused = spawnSync(HIPPO, ["server", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0", "--db", path.join(server.dir, "x.db")], {
    env: { ...process.env, HIPPO_TOKEN: "s3cret" },
    timeout: 20000,
  });
  assert.equal(refused.status, 2);
  assert.match(refused.stderr.toString(), /--http 0\.0\.0\.0:0 is not a loopback address: serve HTTPS \(--tls-cert FILE --tls-key FILE\)/);

  const insecure = await startServer({ listen: "0.0.0.0:0", http: "0.0.0.0:0", args: ["--insecure"] });
  assert.match(insecure.child.output, /WARNING: --insecure/);
  assert.equal(insecure.token, "");
  assert.equal((await api(insecure.url, "studies")).status, 200);
});
