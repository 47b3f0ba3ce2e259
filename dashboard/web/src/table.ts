// The trial table: sorted and filtered on the server, any column; rows fetched by page as the
// table scrolls (a virtual list: only the rows in view are in the DOM), so a 100 000-trial
// study costs one page. A click on a row selects the trial.
import { get, Json, num, studyPath } from "./api";
import { badge, fmtInt, fmtNumber, fmtParameter, h, markOnce } from "./format";

const ROW = 30;
const PAGE = 100;

export class TrialTable {
  readonly element: HTMLElement;
  private columns: string[] = ["id", "state", "objective", "reached_step", "target_step"];
  private sort = "id";
  private desc = false;
  private filters = new Map<string, string>();
  private pages = new Map<number, Json[]>();
  private pageVersions = new Map<number, number>(); // the version each held page was read at
  private loading = new Set<number>();
  private matching = 0;
  private total = 0;
  private version = 0;
  private generation = 0;
  private head = h("div", { class: "trow thead" });
  private filterRow = h("div", { class: "trow tfilter" });
  private body = h("div", { class: "tbody" });
  private spacer = h("div", { class: "tspacer" });
  private viewport = h("div", { class: "tviewport" });
  private count = h("span", { class: "muted small" });
  selected = -1;
  // The viewport's scroll offset and height, kept from its scroll and resize events: reading
  // them from the element after the page changed the DOM would force a layout at every event.
  private top = 0;
  private height = 0;
  // Whether the table is on screen (the page's IntersectionObserver says: `show`). Off screen it
  // keeps the rows pushed to it but writes nothing to the page and reads nothing (a running
  // study changes its count and rows at every event, and each write costs the page a layout and
  // a paint of it); `stale` until it shows its state again.
  private shown = true;
  private stale = false;

  constructor(
    private readonly studyId: string,
    private readonly onSelect: (trial: Json) => void,
  ) {
    this.viewport.append(this.spacer, this.body);
    this.element = h("div", { class: "trials" }, h("div", { class: "ttools" }, this.count), h("div", { class: "tscroll" }, this.head, this.filterRow, this.viewport));
    this.viewport.addEventListener("scroll", () => {
      this.top = this.viewport.scrollTop;
      this.render();
    });
    new ResizeObserver(() => {
      this.height = this.viewport.clientHeight;
      this.render();
    }).observe(this.viewport);
  }

  private params(offset: number): Record<string, string | number | boolean> {
    const filter = [...this.filters].filter(([, v]) => v.trim()).map(([c, v]) => `${c}:${v.trim()}`).join(";");
    return { page_size: PAGE, page_token: offset ? String(offset) : "", sort: this.sort, desc: this.desc, filter };
  }

  /** Drops the cached pages and loads the visible ones again (after a change). */
  async reload() {
    this.generation++;
    this.pages.clear();
    await this.load(this.firstVisiblePage());
    this.render();
  }

  /** Says whether the table is on screen; coming back, it shows its state at once. */
  show(shown: boolean) {
    this.shown = shown;
    if (!shown || !this.stale) return;
    this.stale = false;
    this.showCount();
    this.render();
  }

  private showCount() {
    this.count.textContent = `${fmtInt(this.matching)} of ${fmtInt(this.total)} trials`;
    this.spacer.style.height = `${this.matching * ROW}px`;
  }

  /** Reloads only if a trial changed since the version held (an incremental read); the version answered. */
  async update(): Promise<number> {
    const changed = await get(studyPath(this.studyId, "trials"), { since: this.version, page_size: 1 });
    if ((changed.trials ?? []).length > 0 || num(changed.total) !== this.total) await this.reload();
    return num(changed.version);
  }

  /**
   * Takes the trials the event stream pushed (those changed since its last event, by id: the
   * first rows, and when more changed, `ranges` of every changed number, pairs first, last) into
   * the rows held, when their places are known: sorted by trial number, unfiltered (a trial's
   * row is its number). A held page with a changed row that was not carried is dropped, and read
   * again only when it is in view. False when the table must read its rows again: another
   * order or a filter (a changed value moves rows).
   */
  apply(changes: Json, ranges: number[] = []): boolean {
    const rows: Json[] = changes.trials ?? [];
    const total = num(changes.total);
    const byNumber = this.sort === "id" && !this.desc && ![...this.filters.values()].some((v) => v.trim());
    if (changes.next_page_token && ranges.length === 0) return false;
    if (!byNumber && (rows.length > 0 || ranges.length > 0 || total !== this.total)) return false;
    this.version = Math.max(this.version, num(changes.version));
    if (!byNumber) return true;
    // The rows drawn are drawn again only when one of them changed or the view has room for
    // rows that were not there: a running study's new trials are mostly out of view.
    const [first, count] = this.inView();
    let redraw = this.matching < first + count && total !== this.matching;
    const carried = new Set<number>();
    for (const row of rows) {
      const id = num(row.trial?.id);
      carried.add(id);
      const offset = Math.floor(id / PAGE) * PAGE;
      const page = this.pages.get(offset);
      // A page not held is read when scrolled to; a held page takes the row at its place.
      if (page && id - offset <= page.length) page[id - offset] = row;
      if (id >= first && id < first + count) redraw = true;
    }
    for (let k = 0; k + 1 < ranges.length; k += 2) {
      const low = ranges[k];
      const high = ranges[k + 1];
      for (const [offset, page] of [...this.pages]) {
        // A page read at the event's version or later holds its changes already.
        if ((this.pageVersions.get(offset) ?? 0) >= num(changes.version)) continue;
        const from = Math.max(low, offset);
        const to = Math.min(high, offset + page.length - 1);
        for (let id = from; id <= to; id++) {
          if (carried.has(id)) continue;
          // In view: read again (shown as held meanwhile); else dropped, read when scrolled to.
          if (this.shown && offset < first + count && offset + PAGE > first) void this.load(offset).then(() => this.render(), (error) => console.warn(error));
          else this.pages.delete(offset);
          break;
        }
      }
    }
    if (total !== this.total || total !== this.matching) {
      this.total = total;
      this.matching = total;
      if (this.shown) this.showCount();
      else this.stale = true;
    }
    if (redraw) {
      if (this.shown) this.render();
      else this.stale = true;
    }
    return true;
  }

  /** Whether trial `id` is in `ranges` (pairs first, last, as the event stream sends them). */
  static inRanges(ranges: number[], id: number): boolean {
    for (let k = 0; k + 1 < ranges.length; k += 2) if (id >= ranges[k] && id <= ranges[k + 1]) return true;
    return false;
  }

  /** The first row in view and how many rows the view holds (and two more). */
  private inView(): [number, number] {
    return [Math.floor(this.top / ROW), Math.ceil(this.height / ROW) + 2];
  }

  private firstVisiblePage(): number {
    return Math.floor(this.top / ROW / PAGE) * PAGE;
  }

  private async load(offset: number) {
    if (this.loading.has(offset)) return;
    this.loading.add(offset);
    const generation = this.generation;
    try {
      const page = await get(studyPath(this.studyId, "trials"), this.params(offset));
      if (generation !== this.generation) return;
      const columns: string[] = page.columns ?? this.columns;
      if (columns.join() !== this.columns.join() || this.head.childElementCount === 0) {
        this.columns = columns;
        this.renderHead();
      }
      this.matching = num(page.matching);
      this.total = num(page.total);
      this.version = Math.max(this.version, num(page.version));
      this.pages.set(offset, page.trials ?? []);
      this.pageVersions.set(offset, num(page.version));
      this.count.textContent = `${fmtInt(this.matching)} of ${fmtInt(this.total)} trials`;
    } finally {
      this.loading.delete(offset);
    }
  }

  private renderHead() {
    this.head.replaceChildren();
    this.filterRow.replaceChildren();
    for (const column of this.columns) {
      const label = column.replace(/^param:/, "");
      const cell = h("div", { class: `tcell ${column === "id" ? "narrow" : ""}`, role: "columnheader", "data-column": column }, label);
      if (column === this.sort) cell.append(h("span", { class: "arrow" }, this.desc ? " ▼" : " ▲"));
      cell.addEventListener("click", () => {
        if (this.sort === column) this.desc = !this.desc;
        else {
          this.sort = column;
          this.desc = column === "objective";
        }
        this.renderHead();
        void this.reload();
      });
      this.head.append(cell);
      const input = h("input", {
        class: "input tinput",
        placeholder: column === "state" || column.startsWith("param:") ? "filter" : ">x, <x, a..b",
        "data-filter": column,
        value: this.filters.get(column) ?? "",
      });
      let timer = 0;
      input.addEventListener("input", () => {
        clearTimeout(timer);
        timer = window.setTimeout(() => {
          this.filters.set(column, input.value);
          this.viewport.scrollTop = 0;
          this.top = 0;
          void this.reload();
        }, 250);
      });
      this.filterRow.append(h("div", { class: `tcell ${column === "id" ? "narrow" : ""}` }, input));
    }
  }

  private render() {
    this.spacer.style.height = `${this.matching * ROW}px`;
    const [first, count] = this.inView();
    const rows: HTMLElement[] = [];
    for (let i = first; i < Math.min(this.matching, first + count); i++) {
      const offset = Math.floor(i / PAGE) * PAGE;
      const page = this.pages.get(offset);
      if (!page) {
        // Render again once the page is here (only for the call that starts the load).
        if (!this.loading.has(offset)) this.load(offset).then(() => this.render(), (error) => console.warn(error));
        continue;
      }
      const row = page[i - offset];
      if (row) rows.push(this.rowOf(row.trial, i));
    }
    this.body.style.transform = `translateY(${first * ROW}px)`;
    this.body.replaceChildren(...rows);
    if (rows.length > 0) markOnce("hippo:table");
  }

  private rowOf(trial: Json, index: number): HTMLElement {
    const id = num(trial.id);
    const row = h("div", { class: `trow${id === this.selected ? " selected" : ""}${index % 2 ? " odd" : ""}`, "data-trial": String(id) });
    for (const column of this.columns) {
      let content: string | Node = "";
      if (column === "id") content = String(id);
      else if (column === "state") content = badge(trial.state);
      else if (column === "objective") content = trial.has_objective_value ? fmtNumber(num(trial.objective_value)) : "—";
      else if (column === "reached_step") content = fmtInt(num(trial.reached_step));
      else if (column === "target_step") content = fmtInt(num(trial.target_step));
      else content = fmtParameter(trial.parameters?.[column.slice(6)]);
      row.append(h("div", { class: `tcell ${column === "id" ? "narrow" : ""}` }, content));
    }
    row.addEventListener("click", () => {
      this.selected = id;
      this.onSelect(trial);
      this.render();
    });
    return row;
  }
}
