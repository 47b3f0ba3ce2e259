// uPlot (canvas) charts sized to their card and resized with it, shown through a
// "bitmaprenderer" canvas (surface.ts says why): uPlot draws on its own canvas, kept out of the
// document, and each drawing is handed to the canvas shown in its place.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { show } from "./surface";

export const COLORS = {
  best: "#e8590c",
  line: "#4263eb",
  muted: "rgba(66, 99, 235, 0.35)",
  pruned: "#c92a2a",
  grid: "rgba(0, 0, 0, 0.06)",
  axis: "#5c6370",
};

export function axis(label: string, extra: Partial<uPlot.Axis> = {}): uPlot.Axis {
  return {
    label,
    stroke: COLORS.axis,
    grid: { stroke: COLORS.grid, width: 1 },
    ticks: { stroke: COLORS.grid, width: 1 },
    font: "11px system-ui, sans-serif",
    labelFont: "12px system-ui, sans-serif",
    ...extra,
  };
}

export class Plot {
  plot: uPlot | null = null;
  private observer: ResizeObserver;
  private shown: HTMLCanvasElement | null = null;
  private drawings = 0; // numbers each drawing: a bitmap that comes after a newer one is dropped

  constructor(
    private readonly container: HTMLElement,
    private readonly height = 260,
  ) {
    this.observer = new ResizeObserver((entries) => {
      this.known = entries[entries.length - 1].contentRect.width;
      if (this.plot) this.plot.setSize({ width: this.width(), height: this.height });
    });
    this.observer.observe(container);
  }

  // The container's width, kept from the ResizeObserver: reading it from the element after the
  // page changed the DOM would lay the page out at once (only a chart made before the first
  // observation reads it).
  private known: number | null = null;

  width(): number {
    return Math.max(200, (this.known ?? this.container.clientWidth) - 4);
  }

  /** Replaces the chart when the series change, else only its data. */
  set(options: Omit<uPlot.Options, "width" | "height">, data: uPlot.AlignedData, key: string) {
    if (this.plot && (this.plot as any).__key === key) {
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    const hooks = { ...options.hooks, draw: [...(options.hooks?.draw ?? []), (u: uPlot) => this.present(u)] };
    this.plot = new uPlot({ ...options, hooks, width: this.width(), height: this.height }, data, this.container);
    (this.plot as any).__key = key;
    // uPlot draws on its canvas out of the document; the one shown takes its place.
    this.shown = document.createElement("canvas");
    this.plot.ctx.canvas.replaceWith(this.shown);
  }

  /** Hands uPlot's drawing to the canvas shown (uPlot's "draw" hook: after every drawing). */
  private present(u: uPlot) {
    const drawing = ++this.drawings;
    const drawn = u.ctx.canvas;
    if (drawn.width === 0 || drawn.height === 0) return; // no bitmap of nothing
    void createImageBitmap(drawn).then((bitmap) => {
      if (drawing !== this.drawings || u !== this.plot || !this.shown) bitmap.close();
      else show(this.shown, bitmap);
    });
  }

  destroy() {
    this.observer.disconnect();
    this.plot?.destroy();
    this.plot = null;
    this.shown = null;
  }
}
