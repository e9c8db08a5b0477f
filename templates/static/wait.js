// The wait page's live progress (templates/job.html), a file of its own so that the pages'
// Content-Security-Policy needs no 'unsafe-inline'. The stream's address (under the path
// the app is mounted at) comes from the script tag.
const events = document.currentScript.dataset.events;
// Live progress from Server-Sent Events; without JavaScript the <noscript> refresh above
// does the job, and if the stream fails the page falls back to reloading every 2 s.
const reloadSoon = () => setTimeout(() => location.reload(), 2000);
if (!window.EventSource) {
  reloadSoon();
} else {
  const es = new EventSource(events);
  es.addEventListener("progress", (ev) => {
    const p = JSON.parse(ev.data);
    const bar = document.getElementById("progress");
    if (p.pages_total > 0) { bar.max = p.pages_total; bar.value = p.pages_done; } else { bar.removeAttribute("value"); }
    const pct = p.pages_total ? Math.floor(100 * p.pages_done / p.pages_total) : 0;
    document.getElementById("progress-text").textContent = (p.state === "running" && p.pages_total > 0 && p.pages_done >= p.pages_total)
      ? "All " + p.pages_total + " pages are laid out; writing the file…"
      : (p.pages_total > 0 ? p.pages_done + " of " + p.pages_total + " pages done (" + pct + "%)." : p.pages_done + " pages done so far.");
    const st = document.getElementById("state");
    if ((p.state === "queued" || p.state === "running") && st.dataset.state !== p.state) {
      st.dataset.state = p.state;
      st.textContent = "Please wait: your report is " + (p.state === "queued" ? "queued" : "being rendered") + ". This page refreshes by itself.";
    }
  });
  // Exactly one terminal event ends the stream: show the finished page.
  for (const end of ["done", "failed", "cancelled"]) {
    es.addEventListener(end, () => { es.close(); location.reload(); });
  }
  es.addEventListener("error", () => { if (es.readyState === EventSource.CLOSED) { reloadSoon(); } });
}
