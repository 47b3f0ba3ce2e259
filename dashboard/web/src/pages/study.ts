// A study: summary and stop button, optimization history, learning curves, parallel
// coordinates, parameter importance, savings over time, the stage tree, the trial table with
// the selected trial's schedule. The page reads each part once; then the event stream watches
// the study and pushes the parts that change (live.ts), and the page asks again only for what
// the stream does not carry: a selected trial's curve, tree windows opened by hand, the rows of
// a table sorted or filtered otherwise than by trial number.
import { ApiError, get, Json, num, nums, post, studyPath } from "../api";
import { drawCurves } from "../charts/curves";
import { drawHistory } from "../charts/history";
import { drawSavings, drawSchedule } from "../charts/misc";
import { drawImportance, drawParallel } from "../charts/parallel";
import { Plot } from "../charts/plot";
import { Surface } from "../charts/surface";
import { badge, fmtDuration, fmtInt, fmtNumber, h, markOnce } from "../format";
import { subscribe, throttle } from "../live";
import { elapsedOf } from "./studies";
import { TrialTable } from "../table";
import { TreeView } from "../tree";

function card(title: string, body: HTMLElement, extra: { wide?: boolean; id?: string; hint?: string } = {}) {
  return h(
    "section",
    { class: `card${extra.wide ? " wide" : ""}`, id: extra.id ?? "" },
    h("div", { class: "card-head" }, h("h2", {}, title), extra.hint ? h("span", { class: "muted small" }, extra.hint) : ""),
    body,
  );
}

export function mountStudy(app: HTMLElement, studyId: string): () => void {
  const head = h("div", { class: "page-head study-head" });
  const stats = h("div", { class: "stats" });
  const historyBox = h("div", { class: "chart" });
  const curvesBox = h("div", { class: "chart" });
  const curvesLegend = h("div", { class: "legend small" });
  const parallelCanvas = h("canvas", { class: "parallel" });
  const parallelSurface = new Surface(parallelCanvas);
  const importanceBox = h("div", { class: "importance" });
  const savingsBox = h("div", { class: "chart" });
  const scheduleBox = h("div", { class: "chart" });
  const scheduleTitle = h("span", { class: "muted small" }, "Select a trial in the table.");
  const tree = new TreeView(studyId);
  let selected: Json | null = null;
  let retry = 0;
  let row: Json | null = null;
  const table = new TrialTable(studyId, (trial) => {
    selected = trial;
    scheduleTitle.textContent = `trial ${num(trial.id)} · ${String(trial.state ?? "").replace("TRIAL_", "").toLowerCase()}`;
    drawSchedule(schedule, trial);
    refreshCurves();
  });
  const history = new Plot(historyBox, 240);
  const curves = new Plot(curvesBox, 300);
  const savings = new Plot(savingsBox, 220);
  const schedule = new Plot(scheduleBox, 200);

  app.append(
    head,
    stats,
    h(
      "div",
      { class: "cards" },
      card("Learning curves", h("div", {}, curvesBox, curvesLegend), { id: "curves", hint: "drag to zoom, double-click to reset" }),
      card("Optimization history", historyBox, { id: "history" }),
      card("Parallel coordinates", parallelCanvas, { id: "parallel", hint: "best trials in orange" }),
      card("Hyper-parameter importance", importanceBox, { id: "importance", hint: "variance explained" }),
      card("Stage tree", tree.element, { wide: true, id: "tree" }),
      card("Trials", table.element, { wide: true, id: "trials" }),
      card("Schedule of the selected trial", h("div", {}, scheduleTitle, scheduleBox), { id: "schedule" }),
      card("Savings over time", savingsBox, { id: "savings", hint: "trial steps vs steps trained" }),
    ),
  );

  // The summary is drawn in place: the title and stop button again only when what they show
  // changed (a click on the button is not undone by the next event), each figure's text only
  // when it changed, so that an event that moves a few numbers costs a few text nodes.
  let titleShown = "";
  // Each figure's cells with the text they show (kept here: reading it back from the DOM at
  // every event costs a string made from each cell).
  const statCells = new Map<string, { value: HTMLElement; sub: HTMLElement; shownValue: string | null; shownSub: string }>();
  const progressFill = h("div", { class: "fill" });
  const progress = h("div", { class: "progress" }, progressFill);
  let widthShown = "";
  const setStat = (label: string, value: string | null, sub: string) => {
    let cells = statCells.get(label);
    if (!cells) {
      cells = { value: h("div", { class: "value" }), sub: h("div", { class: "sub muted" }), shownValue: null, shownSub: "" };
      statCells.set(label, cells);
      stats.append(h("div", { class: "stat" }, h("div", { class: "label" }, label), cells.value, cells.sub));
      if (value === null) cells.value.append(progress);
    }
    if (value !== null && cells.shownValue !== value) cells.value.textContent = cells.shownValue = value;
    if (cells.shownSub !== sub) cells.sub.textContent = cells.shownSub = sub;
  };
  let headShown = 0; // when the summary was last drawn (performance.now())
  const renderHead = () => {
    if (!row) return;
    headShown = performance.now();
    const study: Json = row.study;
    const steps: Json = study.steps ?? {};
    // The trial-by-trial steps of the work done so far (each trial up to the step it reached).
    const trialSteps = num(steps.reached_trial_steps);
    const executed = num(steps.executed_steps);
    const running = study.state === "STUDY_RUNNING";
    const title = JSON.stringify([study.spec?.name, study.id, study.state, study.message, study.spec?.algorithm?.name, study.spec?.objective]);
    if (title !== titleShown) {
      titleShown = title;
      const stop = h("button", { class: "button danger", id: "stop-study" }, "Stop study");
      stop.hidden = !running;
      stop.addEventListener("click", async () => {
        if (!confirm(`Stop study ${study.spec?.name ?? studyId}? Its running trials are stopped.`)) return;
        stop.setAttribute("disabled", "");
        try {
          await post(studyPath(studyId, "stop"));
        } catch (error) {
          alert((error as Error).message);
          stop.removeAttribute("disabled");
        }
      });
      head.replaceChildren(
        h("div", {}, h("a", { href: "#/", class: "muted small" }, "← Studies"), h("h1", {}, study.spec?.name || study.id, " ", badge(study.state))),
        h("div", { class: "head-right" }, h("span", { class: "muted small" }, `${study.id} · ${study.spec?.algorithm?.name ?? ""} · ${study.spec?.objective?.direction === "MAXIMIZE" ? "maximize" : "minimize"} ${study.spec?.objective?.metric ?? ""}`), stop),
      );
      if (study.message) head.append(h("p", { class: "muted small message" }, study.message));
    }
    const best = study.best_trial;
    const fraction = num(row.progress);
    const width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
    if (widthShown !== width) progressFill.style.width = widthShown = width;
    setStat("Progress", null, `${(fraction * 100).toFixed(1)} %`);
    setStat("Best", best ? fmtNumber(num(best.objective_value)) : "—", best ? `trial ${num(best.id)}` : "");
    setStat("Trials", `${fmtInt(num(study.trials_completed))} / ${fmtInt(num(study.trials_total))}`, "completed / created");
    setStat("Steps trained", fmtInt(executed), `of ${fmtInt(trialSteps)} trial steps so far`);
    setStat("Steps saved", `${trialSteps > 0 ? ((1 - executed / trialSteps) * 100).toFixed(1) : "0"} %`, `${fmtInt(Math.max(0, trialSteps - executed))} steps`);
    setStat("Elapsed", fmtDuration(elapsedOf(row)), "");
    setStat("Time left", num(row.eta_seconds, -1) >= 0 ? fmtDuration(num(row.eta_seconds)) : "—", "");
    markOnce("hippo:summary");
  };

  const refreshStudy = throttle(async () => {
    try {
      row = await get(studyPath(studyId));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        head.replaceChildren(h("h1", {}, "Study not found"), h("p", { class: "muted" }, (error as Error).message));
        // A study just submitted reaches the dashboard within a second: ask again.
        retry = window.setTimeout(() => void all(), 1500);
        return;
      }
      throw error;
    }
    renderHead();
  }, 1000);
  // A read answered at an older version than the study's (the server makes a large running
  // study's aggregates again only so often) is not asked again: the event stream pushes the
  // part once it is made again, so the page ends at the study's last state.
  // Pushed parts are drawn when their card is on screen (or as soon as it comes into view):
  // ten pages on one machine share its cores with the coordinator.
  const seen = new Map<Element, boolean>();
  const waiting = new Map<Element, () => void>();
  const flush = (element: Element) => {
    const draw = waiting.get(element);
    if (!draw || seen.get(element) === false || document.hidden) return;
    waiting.delete(element);
    draw();
  };
  const visibility = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      seen.set(entry.target, entry.isIntersecting);
      flush(entry.target);
    }
  });
  // The trial table takes the pushed rows all along but shows them only on screen (table.ts).
  const tableSeen = new IntersectionObserver((entries) => table.show(entries[entries.length - 1].isIntersecting));
  tableSeen.observe(table.element);
  const onVisible = () => [...waiting.keys()].forEach(flush);
  document.addEventListener("visibilitychange", onVisible);
  const whenSeen = (element: Element, draw: () => void) => {
    if (!seen.has(element)) visibility.observe(element);
    waiting.set(element, draw);
    flush(element);
  };
  // A part is drawn again only when what it shows changed (a read answered from the server's
  // cache comes back at the version already drawn): redrawing costs the browser, not the
  // coordinator, but ten pages on one machine share its cores.
  // The chart's element says the version it shows (`data-version`: the browser test reads it).
  const drawnAt = new Map<string, number>();
  const changed = (part: string, body: Json, element: HTMLElement) => {
    const version = num(body.version);
    if (drawnAt.get(part) === version) return false;
    drawnAt.set(part, version);
    element.dataset.version = String(version);
    return true;
  };
  const refreshCurves = throttle(async () => {
    const total = num(row?.study?.trials_total);
    const trials = total > 0 && total <= 200 ? "all" : selected ? String(num(selected.id)) : "";
    const body = await get(studyPath(studyId, "curves"), { trials });
    if (changed(`curves ${trials}`, body, curvesBox)) drawCurves(curves, body, curvesLegend);
    markOnce("hippo:curves");
  }, 1500);
  const refreshHistory = throttle(async () => {
    const body = await get(studyPath(studyId, "history"));
    if (changed("history", body, historyBox)) drawHistory(history, body, row?.study?.spec?.objective?.metric ?? "objective");
  }, 1500);
  let parameters: Json | null = null;
  // The parallel coordinates' size, from its ResizeObserver (below).
  let parallelSize = { width: 0, height: 0 };
  const drawParameters = () => {
    if (!parameters) return;
    drawParallel(parallelSurface, parameters, row?.study?.spec?.objective?.metric ?? "objective", row?.study?.spec?.objective?.direction === "MAXIMIZE", parallelSize);
    drawImportance(importanceBox, parameters);
  };
  const refreshParameters = throttle(async () => {
    const body = await get(studyPath(studyId, "parameters"));
    if (!changed("parameters", body, parallelCanvas)) return;
    parameters = body;
    drawParameters();
  }, 2000);
  const refreshSavings = throttle(async () => {
    const body = await get(studyPath(studyId, "savings"));
    if (changed("savings", body, savingsBox)) drawSavings(savings, body);
  }, 2000);
  const refreshTree = throttle(async () => void (await tree.refresh()), 2000);
  const refreshTable = throttle(async () => void (await table.update()), 1000);
  const observer = new ResizeObserver((entries) => {
    const box = entries[entries.length - 1].contentRect;
    parallelSize = { width: box.width, height: box.height };
    drawParameters();
  });
  observer.observe(parallelCanvas);

  // First what the page is judged by (the summary, the learning curves, the trial table), then
  // the rest: a browser opens 6 connections to the coordinator, one held by the event stream,
  // so the later reads would otherwise queue the first ones behind them.
  const rest = () => {
    refreshHistory();
    refreshParameters();
    refreshSavings();
    refreshTree();
  };
  const all = () => {
    refreshStudy();
    refreshCurves();
    refreshTable();
    rest();
  };
  // The rest starts once a frame with the first parts has been painted (the frame after an
  // animation-frame callback): its drawing would otherwise hold that frame back.
  const first = Promise.allSettled([refreshStudy(), refreshCurves(), table.reload()]);
  void first.then(() => requestAnimationFrame(() => setTimeout(rest, 0)));
  // The parts the stream pushes: drawn as they come, unless drawn at that version already.
  const applyParts = (parts: Json) => {
    const total = num(row?.study?.trials_total);
    const ownCurves = selected !== null && !(total > 0 && total <= 200);
    const { curves: curvesPart, history: historyPart, parameters: parametersPart, savings: savingsPart, tree: treePart } = parts;
    if (curvesPart && !ownCurves) {
      whenSeen(curvesBox, () => {
        if (changed("curves", curvesPart, curvesBox)) drawCurves(curves, curvesPart, curvesLegend);
        markOnce("hippo:curves");
      });
    }
    if (historyPart) whenSeen(historyBox, () => changed("history", historyPart, historyBox) && drawHistory(history, historyPart, row?.study?.spec?.objective?.metric ?? "objective"));
    if (parametersPart) {
      parameters = parametersPart;
      whenSeen(parallelCanvas, () => changed("parameters", parametersPart, parallelCanvas) && drawParameters());
    }
    if (savingsPart) whenSeen(savingsBox, () => changed("savings", savingsPart, savingsBox) && drawSavings(savings, savingsPart));
    if (treePart) {
      whenSeen(tree.element, () => tree.apply(treePart));
      // Windows opened by hand are not pushed: read again.
      if (tree.openedByHand()) refreshTree();
    }
    if (parts.trials) {
      const ranges = nums(parts.changed_trials);
      if (!table.apply(parts.trials, ranges)) refreshTable();
      // The selected trial's curve (not pushed in a large study) when it changed.
      const id = num(selected?.id);
      if (ownCurves && ((parts.trials.trials ?? []).some((r: Json) => num(r.trial?.id) === id) || TrialTable.inRanges(ranges, id))) refreshCurves();
    }
  };
  // Events are taken in once per animation frame: the newest summary row and the newest of
  // each chart, every trials page in order (or, after more than kHeldTrials of them, the table
  // read again). A burst of events costs one redraw, and a hidden tab, whose frames do not
  // run, draws nothing until it is shown again.
  const kHeldTrials = 30;
  let heldRow: Json | null = null;
  let heldParts: Json | null = null;
  let heldTrials: Json[] = [];
  let askStudy = false;
  let askTable = false;
  let frame = 0;
  const takeIn = () => {
    frame = 0;
    if (heldRow) {
      row = heldRow;
      renderHead();
    } else if (askStudy) {
      refreshStudy();
    }
    if (askTable) {
      refreshTable();
    }
    const parts = heldParts;
    const trials = askTable ? [] : heldTrials;
    heldRow = heldParts = null;
    heldTrials = [];
    askStudy = askTable = false;
    for (const { trials: page, changed_trials } of trials) applyParts({ trials: page, changed_trials });
    if (parts) applyParts(parts);
  };
  const stop = subscribe((change) => {
    if (change.all) {
      all();
      return;
    }
    const changedRow = change.rows.get(studyId);
    // The summary came with the event: shown without asking.
    if (changedRow) heldRow = changedRow;
    else if (change.studies.has(studyId)) askStudy = true;
    if (change.parts?.study_id === studyId) {
      const { trials, changed_trials, ...charts } = change.parts;
      if (trials) {
        heldTrials.push({ trials, changed_trials });
        if (heldTrials.length > kHeldTrials) {
          heldTrials = [];
          askTable = true;
        }
      }
      heldParts = { ...(heldParts ?? {}), ...charts };
    }
    if (!frame) frame = requestAnimationFrame(takeIn);
  }, `study=${encodeURIComponent(studyId)}`);
  // The elapsed clock, when no event drew the summary meanwhile (each event draws it with the
  // clock: a timer of its own would draw a frame of its own).
  const timer = setInterval(() => performance.now() - headShown >= 4500 && renderHead(), 5000);
  return () => {
    stop();
    cancelAnimationFrame(frame);
    clearInterval(timer);
    visibility.disconnect();
    tableSeen.disconnect();
    document.removeEventListener("visibilitychange", onVisible);
    clearTimeout(retry);
    observer.disconnect();
    for (const plot of [history, curves, savings, schedule]) plot.destroy();
  };
}
