// The web app is served by the coordinator from files embedded in the binary: index.html (with
// the stylesheet in it) and one JS bundle with a hashed name, no external URL.
import { defineConfig, Plugin } from "vite";

// The stylesheet goes into index.html: a separate one blocks the first paint until it has come
// (a round trip more on a loaded coordinator), and the shell is drawn as soon as the HTML is.
function inlineStylesheet(): Plugin {
  return {
    name: "hippo-inline-stylesheet",
    apply: "build",
    transformIndexHtml: {
      order: "post",
      handler(html, context) {
        const bundle = context.bundle ?? {};
        for (const [name, file] of Object.entries(bundle)) {
          if (file.type !== "asset" || !name.endsWith(".css")) continue;
          const link = new RegExp(`<link rel="stylesheet"[^>]*href="/${name.replace(/[.]/g, "[.]")}"[^>]*>`);
          if (!link.test(html)) continue;
          html = html.replace(link, () => `<style>${String(file.source)}</style>`);
          delete bundle[name];
        }
        return html;
      },
    },
  };
}

export default defineConfig({
  base: "/",
  plugins: [inlineStylesheet()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    reportCompressedSize: false,
  },
});
