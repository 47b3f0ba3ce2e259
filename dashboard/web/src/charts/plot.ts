// uPlot (canvas) charts sized to their card and resized with it.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

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

  constructor(
    private readonly container: HTMLElement,
    private readonly height = 260,
  ) {
    this.observer = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize({ width: this.width(), height: this.height });
    });
    this.observer.observe(container);
  }

  width(): number {
    return Math.max(200, this.container.clientWidth - 4);
  }

  /** Replaces the chart when the series change, else only its data. */
  set(options: Omit<uPlot.Options, "width" | "height">, data: uPlot.AlignedData, key: string) {
    if (this.plot && (this.plot as any).__key === key) {
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    this.plot = new uPlot({ ...options, width: this.width(), height: this.height }, data, this.container);
    (this.plot as any).__key = key;
  }

  destroy() {
    this.observer.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}
