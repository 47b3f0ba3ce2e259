// Workers: what each runs (stage and study), its devices, the states in its fork cache, and
// its utilisation over the last minutes (the busy share of the dashboard's samples). Read once;
// then the event stream pushes the workers' page whenever a worker changes.
import { get, Json, num } from "../api";
import { fmtInt, h } from "../format";
import { subscribe, throttle } from "../live";

function sparkline(samples: Json[]): HTMLCanvasElement {
  const canvas = h("canvas", { class: "spark", width: "240", height: "36" });
  const ctx = canvas.getContext("2d")!;
  const n = samples.length;
  if (n === 0) return canvas;
  const w = 240 / n;
  samples.forEach((sample, i) => {
    const busy = num(sample.busy);
    ctx.fillStyle = `rgba(66, 99, 235, ${0.15 + 0.85 * busy})`;
    const height = 4 + 30 * busy;
    ctx.fillRect(i * w, 36 - height, Math.max(1, w - 0.5), height);
  });
  return canvas;
}

// Stage ids given to workers carry their family in the upper 32 bits: shown as family/node.
function stageName(id: number): string {
  const family = Math.floor(id / 2 ** 32);
  return `${family}/${id - family * 2 ** 32}`;
}

/** The states a worker's fork cache holds: the count, then the latest states as chips. */
function forkCache(count: number, entries: Json[]): HTMLElement {
  const shown = entries.slice(0, 12);
  const chips = shown.map((entry) => {
    const label = `stage ${stageName(num(entry.stage_id))} · step ${fmtInt(num(entry.step))}`;
    const title = `${label}${entry.study_id ? ` (study ${entry.study_id})` : ""}`;
    return entry.study_id
      ? h("a", { class: "chip", href: `#/study/${encodeURIComponent(entry.study_id)}`, title, "data-state": `${num(entry.stage_id)}@${num(entry.step)}` }, label)
      : h("span", { class: "chip", title, "data-state": `${num(entry.stage_id)}@${num(entry.step)}` }, label);
  });
  const more = count - shown.length;
  return h(
    "div",
    { class: "fork-cache" },
    h("div", { class: "num" }, `${fmtInt(count)} state${count === 1 ? "" : "s"}`),
    h("div", { class: "chips" }, ...chips, more > 0 ? h("span", { class: "muted small" }, `+${fmtInt(more)} more`) : ""),
  );
}

export function mountWorkers(app: HTMLElement): () => void {
  const tbody = h("tbody");
  const summary = h("p", { class: "muted" });
  app.append(
    h("div", { class: "page-head" }, h("h1", {}, "Workers"), summary),
    h(
      "div",
      { class: "card flush" },
      h(
        "table",
        { class: "grid workers" },
        h("thead", {}, h("tr", {}, ...["Worker", "State", "Running", "Devices", "Fork cache", "Utilisation", "Over time (oldest → now)"].map((t) => h("th", {}, t)))),
        tbody,
      ),
    ),
  );
  const render = (response: Json) => {
    const workers: Json[] = response.workers ?? [];
    const busy = workers.filter((w) => num(w.worker?.running_stage_id) !== 0).length;
    summary.textContent = `${workers.filter((w) => w.worker?.connected).length} connected, ${busy} training now.`;
    tbody.replaceChildren(
      ...workers.map((row) => {
        const worker: Json = row.worker;
        const stage = num(worker.running_stage_id);
        const running = stage
          ? h("span", {}, row.running_study ? h("a", { href: `#/study/${encodeURIComponent(row.running_study)}` }, row.running_study) : "", h("div", { class: "muted small" }, `stage ${stageName(stage)}`))
          : h("span", { class: "muted" }, "idle");
        return h(
          "tr",
          { "data-worker": worker.worker_id },
          h("td", {}, worker.worker_id, h("div", { class: "muted small" }, worker.host ?? "")),
          h(
            "td",
            {},
            h("span", { class: `badge ${worker.connected ? (stage ? "running" : "completed") : "failed"}` }, worker.connected ? (stage ? "busy" : "idle") : "gone"),
            // health_message is set only while the worker is unhealthy (drained or on probation).
            worker.health_message ? h("div", { class: "small" }, h("span", { class: "badge failed" }, "unhealthy"), " ", worker.health_message) : "",
          ),
          h("td", {}, running),
          h("td", {}, (worker.devices ?? []).map((d: Json) => d.name).join(", ") || "cpu"),
          h("td", {}, forkCache(num(worker.cached_states), row.fork_cache ?? [])),
          h("td", { class: "num" }, `${(num(row.utilisation) * 100).toFixed(0)} %`),
          h("td", {}, sparkline(row.samples ?? [])),
        );
      }),
    );
  };
  const refresh = throttle(async () => render(await get("workers")), 1000);
  refresh();
  const stop = subscribe((change) => {
    if (change.workersPage) render(change.workersPage);
    else if (change.all) refresh();
  }, "workers=true");
  return stop;
}
