// Studies: one row per study (newest first) with its state, progress, best value, trials,
// steps trained against the steps its trials asked for, elapsed and estimated time left.
// Pages of 50 studies; live rows come with the events (the changed studies' rows), or, when the
// event could not carry them all, from a read `since` the version held.
import { get, Json, num } from "../api";
import { badge, fmtDuration, fmtInt, fmtNumber, h, progressBar } from "../format";
import { subscribe, throttle } from "../live";

export function mountStudies(app: HTMLElement): () => void {
  const rows = new Map<string, Json>();
  let version = 0;
  let nextPage = "";
  const tbody = h("tbody");
  const more = h("button", { class: "button secondary" }, "Load more studies");
  const empty = h("p", { class: "muted empty" }, "No study yet. Submit one with `hippo submit SPEC`.");
  app.append(
    h("div", { class: "page-head" }, h("h1", {}, "Studies"), h("p", { class: "muted" }, "Every study of this coordinator, live.")),
    h(
      "div",
      { class: "card flush" },
      h(
        "table",
        { class: "grid studies" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ...["Study", "State", "Progress", "Best", "Trials", "Steps trained / trial steps", "Saved", "Elapsed", "Time left"].map((t) =>
              h("th", {}, t),
            ),
          ),
        ),
        tbody,
      ),
      empty,
    ),
    more,
  );

  const render = () => {
    const sorted = [...rows.values()].sort((a, b) => String(b.study.created ?? "").localeCompare(String(a.study.created ?? "")));
    tbody.replaceChildren(...sorted.map(rowOf));
    empty.hidden = rows.size > 0;
    more.hidden = !nextPage;
  };

  const loadPage = async (token: string) => {
    const page = await get("studies", { page_size: 50, page_token: token });
    for (const row of page.studies ?? []) rows.set(row.study.id, row);
    if (!token) version = num(page.version);
    nextPage = page.next_page_token ?? "";
    render();
  };
  const refresh = throttle(async () => {
    // Only what changed since the version held; a first page when nothing is held yet.
    const page = await get("studies", { page_size: 1000, since: version });
    for (const row of page.studies ?? []) rows.set(row.study.id, row);
    version = num(page.version);
    render();
  }, 1000);
  more.addEventListener("click", () => void loadPage(nextPage));
  void loadPage("");
  const stop = subscribe((change) => {
    if (change.all) {
      // After a reconnection the server may have restarted (its versions with it): start over.
      version = 0;
      void loadPage("");
    } else if (change.studies.size > 0) {
      for (const [id, row] of change.rows) rows.set(id, row);
      if ([...change.studies].some((id) => !change.rows.has(id))) refresh();
      else render();
    }
  });
  // Elapsed and time left move without any change on the server.
  const timer = setInterval(render, 5000);
  return () => {
    stop();
    clearInterval(timer);
  };
}

/** Seconds since the study began; a running study's clock moves between server updates. */
export function elapsedOf(row: Json): number {
  const created = Date.parse(row.study?.created ?? "");
  if (row.study?.state === "STUDY_RUNNING" && Number.isFinite(created)) return Math.max(0, (Date.now() - created) / 1000);
  return num(row.elapsed_seconds);
}

function rowOf(row: Json): HTMLElement {
  const study: Json = row.study;
  const steps: Json = study.steps ?? {};
  // The trial-by-trial steps of the work done so far (each trial up to the step it reached).
  const trialSteps = num(steps.reached_trial_steps);
  const executed = num(steps.executed_steps);
  const saved = trialSteps > 0 ? 1 - executed / trialSteps : 0;
  const best = study.best_trial;
  const name = study.spec?.name || study.id;
  const link = h("a", { href: `#/study/${encodeURIComponent(study.id)}`, class: "study-link" }, name);
  return h(
    "tr",
    { "data-study": study.id },
    h("td", {}, link, h("div", { class: "muted small" }, `${study.id} · ${study.spec?.algorithm?.name ?? ""}`)),
    h("td", {}, badge(study.state)),
    h("td", { class: "progress-cell" }, progressBar(num(row.progress)), h("span", { class: "small muted" }, `${(num(row.progress) * 100).toFixed(0)} %`)),
    h("td", { class: "num" }, best ? fmtNumber(num(best.objective_value)) : "—", best ? h("div", { class: "muted small" }, `trial ${num(best.id)}`) : ""),
    h("td", { class: "num" }, `${fmtInt(num(study.trials_completed))} / ${fmtInt(num(study.trials_total))}`),
    h("td", { class: "num" }, `${fmtInt(executed)} / ${fmtInt(trialSteps)}`),
    h("td", { class: "num" }, h("span", { class: saved > 0 ? "saved" : "" }, `${(saved * 100).toFixed(1)} %`)),
    h("td", { class: "num" }, fmtDuration(elapsedOf(row))),
    h("td", { class: "num" }, num(row.eta_seconds, -1) >= 0 ? fmtDuration(num(row.eta_seconds)) : "—"),
  );
}
