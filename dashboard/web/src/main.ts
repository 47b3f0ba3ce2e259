// The dashboard's router: #/ (studies), #/study/ID, #/workers. Each page mounts into #app and
// returns a function that unmounts it.
import "./style.css";
import { mountStudies } from "./pages/studies";
import { mountStudy } from "./pages/study";
import { mountWorkers } from "./pages/workers";

type Unmount = () => void;
let unmount: Unmount | null = null;

function route() {
  const app = document.getElementById("app")!;
  unmount?.();
  app.replaceChildren();
  const hash = location.hash.replace(/^#/, "") || "/";
  let page = "studies";
  if (hash.startsWith("/study/")) {
    page = "study";
    unmount = mountStudy(app, decodeURIComponent(hash.slice("/study/".length)));
  } else if (hash === "/workers") {
    page = "workers";
    unmount = mountWorkers(app);
  } else {
    unmount = mountStudies(app);
  }
  for (const link of document.querySelectorAll<HTMLElement>("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === page || (page === "study" && link.dataset.nav === "studies"));
  }
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", route);
// The shell (the top bar, in index.html) is painted before the page is built, so that the first
// paint does not wait for the page's work. A hidden tab paints no frame: it builds at once.
if (document.visibilityState === "visible") requestAnimationFrame(() => setTimeout(route, 0));
else route();
