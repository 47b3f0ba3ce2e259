// A chart's canvas shown as an ImageBitmap ("bitmaprenderer" context), drawn elsewhere.
//
// Why: in Chromium a 2D canvas on the page hands the compositor a copy of its pixels at every
// frame the page draws, changed or not (`Canvas2DResourceProvider::ProduceCanvasResource` in a
// trace: five chart canvases cost a watching page 3 ms of its main thread for each frame, and a
// page draws a frame every second for the summary's figures). A "bitmaprenderer" canvas shows
// the bitmap it was given and costs a frame nothing until it is given another: the chart is
// drawn on an OffscreenCanvas (or on uPlot's own canvas, kept out of the document), and only a
// redraw hands a new bitmap over.

/** A canvas element drawn through an OffscreenCanvas: `begin` a drawing, then `end` shows it. */
export class Surface {
  private offscreen: OffscreenCanvas | null = null;
  private context: OffscreenCanvasRenderingContext2D | null = null;

  constructor(readonly canvas: HTMLCanvasElement) {}

  /**
   * A cleared 2D context of `width` × `height` CSS pixels (scaled to the device's pixel ratio),
   * to draw the next picture on.
   */
  begin(width: number, height: number): OffscreenCanvasRenderingContext2D {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(width * ratio));
    const h = Math.max(1, Math.round(height * ratio));
    if (!this.offscreen || this.offscreen.width !== w || this.offscreen.height !== h) {
      this.offscreen = new OffscreenCanvas(w, h);
      this.context = this.offscreen.getContext("2d")!;
    }
    const ctx = this.context!;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return ctx;
  }

  /** Shows what was drawn since `begin`. */
  end() {
    if (!this.offscreen) return;
    show(this.canvas, this.offscreen.transferToImageBitmap());
  }
}

/** Shows `bitmap` on `canvas` (a "bitmaprenderer" one), at the bitmap's own pixel size. */
export function show(canvas: HTMLCanvasElement, bitmap: ImageBitmap) {
  if (canvas.width !== bitmap.width) canvas.width = bitmap.width;
  if (canvas.height !== bitmap.height) canvas.height = bitmap.height;
  canvas.getContext("bitmaprenderer")!.transferFromImageBitmap(bitmap);
}
