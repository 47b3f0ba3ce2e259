// The stage tree on a canvas: a stage is a bar from its start step to its end step, children
// below their parent's row, branch points marked where a parent ends. Windows of the tree come
// from the server (the most branched subtrees first); "+N" marks children not loaded yet and
// a click on it loads them; a click on a bar collapses or expands it. Wheel zooms (shift: rows
// only), drag pans, a search by trial number loads and highlights that trial's path.
import { get, Json, num, nums, studyPath } from "./api";
import { Surface } from "./charts/surface";
import { fmtInt, h } from "./format";

type Node = {
  id: number;
  parent: number;
  start: number;
  end: number;
  state: string;
  trials: number;
  childCount: number;
  descendants: number;
  trialIds: number[];
  worker: string;
  attempts: number;
  collapsed: boolean;
};

const STATE_COLOR: Record<string, string> = {
  STAGE_DONE: "#2f9e44",
  STAGE_RUNNING: "#4263eb",
  STAGE_READY: "#f59f00",
  STAGE_PENDING: "#adb5bd",
  STAGE_FAILED: "#e03131",
};

export class TreeView {
  readonly element: HTMLElement;
  private canvas = h("canvas", { class: "tree-canvas" });
  private surface = new Surface(this.canvas); // surface.ts: why drawn offscreen
  private info = h("div", { class: "tree-info muted small" });
  private tip = h("div", { class: "tree-tip", hidden: "" });
  private nodes = new Map<number, Node>();
  private windows = new Map<string, Record<string, string | number>>();
  private highlighted = new Set<number>();
  private rows = new Map<number, number>();
  private loaded = new Map<number, number>(); // children loaded, by stage
  private visible: Node[] = [];
  private maxStep = 1;
  private rowCount = 1;
  // View: pixels per step and per row, offset.
  private zoomX = 1;
  private zoomY = 1;
  private panX = 0;
  private panY = 0;
  private fitted = false;
  private totalNodes = 0;

  constructor(private readonly studyId: string) {
    const search = h("input", { type: "search", placeholder: "Find trial #", class: "input small-input", "aria-label": "Find a trial in the tree" });
    const fit = h("button", { class: "button secondary small" }, "Fit");
    const legend = h("div", { class: "legend small" });
    legend.innerHTML = Object.entries(STATE_COLOR)
      .map(([s, c]) => `<span class="key" style="--c:${c}"></span>${s.replace("STAGE_", "").toLowerCase()}`)
      .join("") + `<span class="key branch"></span>branch point <span class="key shared"></span>shared stage`;
    this.element = h(
      "div",
      { class: "tree" },
      h("div", { class: "tree-tools" }, search, fit, legend),
      h("div", { class: "tree-stage" }, this.canvas, this.tip),
      this.info,
    );
    fit.addEventListener("click", () => {
      this.fitted = false;
      this.draw();
    });
    search.addEventListener("change", () => {
      const trial = parseInt(search.value, 10);
      if (Number.isFinite(trial)) void this.find(trial);
    });
    this.bindPointer();
    new ResizeObserver(() => this.draw()).observe(this.canvas);
    this.windows.set("root", { depth: 6, max_children: 40 });
  }

  /** Reads the windows shown again; the oldest version they were built at. */
  async refresh(): Promise<number> {
    let version = Infinity;
    for (const params of this.windows.values()) {
      const window = await get(studyPath(this.studyId, "tree"), params);
      version = Math.min(version, num(window.version));
      this.merge(window);
    }
    this.layout();
    this.draw();
    return version;
  }

  /** Takes a window the event stream pushed (the first one, `root`). */
  apply(window: Json) {
    this.merge(window);
    this.layout();
    this.draw();
  }

  /** Whether windows other than the first are shown (opened by hand: not pushed). */
  openedByHand(): boolean {
    return this.windows.size > 1;
  }

  private async find(trial: number) {
    const params = { depth: 1, max_children: 1, trial };
    this.windows.set(`trial-${trial}`, params);
    try {
      const window = await get(studyPath(this.studyId, "tree"), params);
      this.highlighted = new Set(nums(window.highlighted));
      for (const id of this.highlighted) {
        const node = this.nodes.get(id);
        if (node) node.collapsed = false;
      }
      this.merge(window);
      this.layout();
      const last = [...this.highlighted].pop();
      const row = last !== undefined ? this.rows.get(last) : undefined;
      if (row !== undefined) this.panY = this.canvas.clientHeight / 2 - (row + 0.5) * this.rowHeight();
      this.draw();
    } catch (error) {
      this.info.textContent = String((error as Error).message);
    }
  }

  private merge(window: Json) {
    this.totalNodes = num(window.total_nodes);
    for (const raw of window.nodes ?? []) {
      const stage = raw.stage ?? {};
      const id = num(stage.id);
      const old = this.nodes.get(id);
      this.nodes.set(id, {
        id,
        parent: id === 0 ? -1 : num(stage.parent_id),
        start: num(stage.start_step),
        end: num(stage.end_step),
        state: stage.state ?? "",
        trials: num(raw.trial_count),
        childCount: num(raw.child_count),
        descendants: num(raw.descendant_count),
        trialIds: nums(stage.trial_ids),
        worker: stage.worker ?? "",
        attempts: num(stage.attempts),
        collapsed: old?.collapsed ?? false,
      });
    }
  }

  private childrenOf(): Map<number, Node[]> {
    const children = new Map<number, Node[]>();
    for (const node of this.nodes.values()) {
      if (node.parent < 0) continue;
      const list = children.get(node.parent) ?? [];
      list.push(node);
      children.set(node.parent, list);
    }
    for (const list of children.values()) list.sort((a, b) => b.descendants - a.descendants || a.id - b.id);
    return children;
  }

  private layout() {
    const children = this.childrenOf();
    this.loaded = new Map([...children].map(([id, list]) => [id, list.length]));
    this.rows.clear();
    this.visible = [];
    this.maxStep = 1;
    let row = 0;
    // Depth first: a stage sits on its first child's row, so a shared prefix runs straight on.
    const place = (node: Node): number => {
      this.visible.push(node);
      this.maxStep = Math.max(this.maxStep, node.end);
      const kids = node.collapsed ? [] : children.get(node.id) ?? [];
      let first = -1;
      for (const kid of kids) {
        const r = place(kid);
        if (first < 0) first = r;
      }
      const mine = first >= 0 ? first : row++;
      this.rows.set(node.id, mine);
      return mine;
    };
    const root = this.nodes.get(0);
    if (root) {
      for (const kid of children.get(0) ?? []) place(kid);
    }
    this.rowCount = Math.max(1, row);
    this.info.textContent = `${fmtInt(this.visible.length)} of ${fmtInt(this.totalNodes)} stages shown · click a bar to collapse or expand, "+N" to load more, wheel to zoom, drag to pan`;
  }

  private rowHeight() {
    return Math.max(2, (this.canvas.clientHeight - 20) / this.rowCount) * this.zoomY;
  }
  private stepWidth() {
    return ((this.canvas.clientWidth - 70) / this.maxStep) * this.zoomX;
  }
  private px(step: number) {
    return 10 + this.panX + step * this.stepWidth();
  }
  private py(row: number) {
    return 10 + this.panY + (row + 0.5) * this.rowHeight();
  }

  draw() {
    const canvas = this.canvas;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0) return;
    if (!this.fitted && this.visible.length > 0) {
      this.zoomX = this.zoomY = 1;
      this.panX = this.panY = 0;
      this.fitted = true;
    }
    const ctx = this.surface.begin(width, height);
    try {
      this.drawStages(ctx, width, height);
    } finally {
      this.surface.end();
    }
  }

  private drawStages(ctx: OffscreenCanvasRenderingContext2D, width: number, height: number) {
    const rowH = this.rowHeight();
    const bar = Math.max(1.5, Math.min(14, rowH * 0.55));
    ctx.font = "10px system-ui, sans-serif";
    // Connectors first, bars over them.
    ctx.strokeStyle = "#ced4da";
    ctx.lineWidth = 1;
    for (const node of this.visible) {
      const parent = this.nodes.get(node.parent);
      if (!parent || parent.id === 0) continue;
      const x = this.px(node.start);
      const y0 = this.py(this.rows.get(parent.id)!);
      const y1 = this.py(this.rows.get(node.id)!);
      if (y0 === y1 || Math.max(y0, y1) < 0 || Math.min(y0, y1) > height) continue;
      ctx.beginPath();
      ctx.moveTo(x, y0);
      ctx.lineTo(x, y1);
      ctx.stroke();
    }
    for (const node of this.visible) {
      const y = this.py(this.rows.get(node.id)!);
      if (y < -bar || y > height + bar) continue;
      const x0 = this.px(node.start);
      const x1 = Math.max(x0 + 1.5, this.px(node.end));
      if (x1 < 0 || x0 > width) continue;
      const shared = node.trials > 1;
      const thickness = shared ? bar : bar * 0.6;
      ctx.fillStyle = STATE_COLOR[node.state] ?? "#adb5bd";
      ctx.globalAlpha = this.highlighted.size > 0 && !this.highlighted.has(node.id) ? 0.35 : 1;
      ctx.fillRect(x0, y - thickness / 2, x1 - x0, thickness);
      ctx.globalAlpha = 1;
      if (this.highlighted.has(node.id)) {
        ctx.strokeStyle = "#e8590c";
        ctx.lineWidth = 2;
        ctx.strokeRect(x0 - 1, y - thickness / 2 - 1, x1 - x0 + 2, thickness + 2);
      }
      // A branch point where the stage ends and several children start.
      const loaded = this.visibleChildren(node.id);
      if (node.childCount > 1 && !node.collapsed) {
        ctx.fillStyle = "#212529";
        ctx.beginPath();
        ctx.arc(x1, y, Math.max(2, Math.min(4, bar / 2)), 0, Math.PI * 2);
        ctx.fill();
      }
      let label = "";
      if (node.collapsed && node.childCount > 0) label = `▸ ${fmtInt(node.descendants)}`;
      else if (node.childCount > loaded) label = `+${fmtInt(node.childCount - loaded)}`;
      if (label && rowH >= 6) {
        ctx.fillStyle = "#495057";
        ctx.fillText(label, x1 + 5, y + 3);
      }
      if (rowH >= 12 && x1 - x0 > 70) {
        ctx.fillStyle = "#fff";
        ctx.fillText(`${node.start}–${node.end}${shared ? ` · ${node.trials} trials` : ""}`, x0 + 4, y + 3.5);
      }
    }
  }

  private visibleChildren(id: number): number {
    return this.loaded.get(id) ?? 0;
  }

  private hit(event: MouseEvent): { node: Node; more: boolean } | null {
    const rect = this.canvas.getBoundingClientRect();
    const mx = event.clientX - rect.left;
    const my = event.clientY - rect.top;
    const rowH = this.rowHeight();
    let best: { node: Node; more: boolean } | null = null;
    for (const node of this.visible) {
      const y = this.py(this.rows.get(node.id)!);
      if (Math.abs(my - y) > Math.max(4, rowH / 2)) continue;
      const x0 = this.px(node.start);
      const x1 = Math.max(x0 + 1.5, this.px(node.end));
      if (mx >= x0 - 2 && mx <= x1 + 2) best = { node, more: false };
      else if (mx > x1 && mx < x1 + 48 && node.childCount > this.visibleChildren(node.id)) best = { node, more: true };
    }
    return best;
  }

  private bindPointer() {
    const canvas = this.canvas;
    let drag: { x: number; y: number; panX: number; panY: number; moved: boolean } | null = null;
    canvas.addEventListener("wheel", (event) => {
      event.preventDefault();
      const rect = canvas.getBoundingClientRect();
      const mx = event.clientX - rect.left - 10;
      const my = event.clientY - rect.top - 10;
      const factor = Math.exp(-event.deltaY * 0.0015);
      if (!event.shiftKey) {
        this.panX = mx - (mx - this.panX) * factor;
        this.zoomX *= factor;
      }
      this.panY = my - (my - this.panY) * factor;
      this.zoomY *= factor;
      this.draw();
    }, { passive: false });
    canvas.addEventListener("mousedown", (event) => {
      drag = { x: event.clientX, y: event.clientY, panX: this.panX, panY: this.panY, moved: false };
    });
    window.addEventListener("mouseup", () => setTimeout(() => (drag = null)));
    canvas.addEventListener("mousemove", (event) => {
      if (drag && (event.buttons & 1) === 1) {
        const dx = event.clientX - drag.x;
        const dy = event.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
        this.panX = drag.panX + dx;
        this.panY = drag.panY + dy;
        this.draw();
        return;
      }
      const hit = this.hit(event);
      if (!hit) {
        this.tip.hidden = true;
        return;
      }
      const n = hit.node;
      this.tip.hidden = false;
      this.tip.style.left = `${event.offsetX + 14}px`;
      this.tip.style.top = `${event.offsetY + 10}px`;
      this.tip.textContent = hit.more
        ? `Load ${fmtInt(n.childCount - this.visibleChildren(n.id))} more children`
        : `stage ${n.id} · steps ${n.start}–${n.end} · ${n.state.replace("STAGE_", "").toLowerCase()} · ${fmtInt(n.trials)} trial${n.trials === 1 ? "" : "s"}` +
          (n.trialIds.length ? ` (${n.trialIds.join(", ")}${n.trials > n.trialIds.length ? ", …" : ""})` : "") +
          (n.worker ? ` · on ${n.worker}` : "") + (n.childCount > 1 ? ` · branches into ${n.childCount}` : "");
    });
    canvas.addEventListener("mouseleave", () => (this.tip.hidden = true));
    canvas.addEventListener("click", (event) => {
      if (drag?.moved) return;
      const hit = this.hit(event);
      if (!hit) return;
      if (hit.more || (hit.node.childCount > 0 && this.visibleChildren(hit.node.id) === 0)) {
        hit.node.collapsed = false;
        this.windows.set(`node-${hit.node.id}`, { root: hit.node.id, depth: 3, max_children: 200 });
        void this.refresh();
      } else if (hit.node.childCount > 0) {
        hit.node.collapsed = !hit.node.collapsed;
        this.layout();
        this.draw();
      }
    });
  }
}
