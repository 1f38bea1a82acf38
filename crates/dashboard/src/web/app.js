// streambot dashboard page: log in with the secret (kept in sessionStorage, sent as a bearer
// token), then poll /jobs and /stats every 2 s and /stats/history every 15 s. No external assets.
"use strict";

(function () {
  const SECRET_KEY = "streambotDashboardSecret";
  const POLL_MILLISECONDS = 2000;
  const HISTORY_MILLISECONDS = 15000;
  const LIVE_STATES = ["queued", "starting", "recording", "paused", "finalizing", "uploading"];

  const element = (id) => document.getElementById(id);
  let pollTimer = null;
  let historyTimer = null;
  let generation = 0;
  // The jobs list is paged by the API (newest first): this page's first job's position.
  const JOBS_PAGE_SIZE = 100;
  let jobsOffset = 0;

  // A secret passed in the fragment (`/#secret=...`) is taken and removed from the address bar.
  function takeSecretFromFragment() {
    const fragment = window.location.hash.replace(/^#/, "");
    if (!fragment) return;
    const parameters = new URLSearchParams(fragment);
    const secret = parameters.get("secret");
    if (secret) sessionStorage.setItem(SECRET_KEY, secret);
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  function secret() {
    return sessionStorage.getItem(SECRET_KEY);
  }

  class UnauthorizedError extends Error {}

  async function api(path, options) {
    const response = await fetch(path, Object.assign({}, options, {
      headers: { "Authorization": "Bearer " + secret(), "Accept": "application/json" },
      cache: "no-store",
    }));
    if (response.status === 401) throw new UnauthorizedError("unauthorized");
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message + " (" + body.error.code + ")" : "HTTP " + response.status;
      throw new Error(message);
    }
    return body;
  }

  function formatBytes(bytes) {
    if (!Number.isFinite(bytes) || bytes <= 0) return "0 B";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
    return value.toFixed(unit === 0 ? 0 : 1) + " " + units[unit];
  }

  function formatDuration(seconds) {
    const total = Math.max(0, Math.floor(seconds || 0));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const rest = total % 60;
    return hours + ":" + String(minutes).padStart(2, "0") + ":" + String(rest).padStart(2, "0");
  }

  function formatBitrate(bitsPerSecond) {
    if (!Number.isFinite(bitsPerSecond) || bitsPerSecond <= 0) return "–";
    if (bitsPerSecond >= 1e6) return (bitsPerSecond / 1e6).toFixed(2) + " Mb/s";
    return (bitsPerSecond / 1e3).toFixed(0) + " kb/s";
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function actionButton(job, action, label) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.dataset.action = action;
    button.dataset.jobId = job.id;
    return button;
  }

  function renderJobs(jobs) {
    const body = element("jobs-body");
    const rows = document.createDocumentFragment();
    for (const job of jobs) {
      const row = document.createElement("tr");
      row.dataset.jobId = job.id;
      row.dataset.state = job.state;
      row.dataset.desired = job.desired_state;
      const idCell = cell(job.id, "job-id");
      idCell.title = job.url;
      row.appendChild(idCell);
      const stateCell = cell(job.state, "state state-" + job.state);
      const live = LIVE_STATES.includes(job.state);
      if (live && job.desired_state !== "record") {
        const desired = document.createElement("span");
        desired.className = "desired";
        desired.textContent = " → " + job.desired_state;
        stateCell.appendChild(desired);
      }
      row.appendChild(stateCell);
      row.appendChild(cell(String(job.user_id), "user"));
      row.appendChild(cell(formatDuration(job.elapsed_seconds), "elapsed"));
      row.appendChild(cell(formatBytes(job.bytes_written), "size"));
      row.appendChild(cell(formatBitrate(job.bitrate_bits_per_second), "bitrate"));
      const gaps = job.gap_segments > 0 ? job.gap_segments + " (" + job.gap_seconds.toFixed(1) + " s)" : "0";
      row.appendChild(cell(gaps, "gaps"));
      row.appendChild(cell(job.worker_id || "–", "worker"));
      const actions = cell("", "actions");
      if (live) {
        if (job.desired_state === "pause" || job.state === "paused") {
          actions.appendChild(actionButton(job, "resume", "Resume"));
        } else if (job.desired_state === "record") {
          actions.appendChild(actionButton(job, "pause", "Pause"));
        }
        if (job.desired_state !== "stop") {
          actions.appendChild(actionButton(job, "stop", "Stop"));
        }
      }
      row.appendChild(actions);
      rows.appendChild(row);
    }
    body.replaceChildren(rows);
    element("jobs-empty").hidden = jobs.length > 0;
  }

  function renderStats(stats) {
    const store = stats.store;
    const system = stats.system;
    element("card-active").textContent = String(store.active_recordings);
    element("card-queued").textContent = String(store.queue_depth);
    element("card-disk").textContent = formatBytes(system.recordings_bytes);
    element("card-free").textContent = system.filesystem_total_bytes > 0
      ? formatBytes(system.filesystem_free_bytes) + " of " + formatBytes(system.filesystem_total_bytes)
      : "–";
    element("card-cpu").textContent = system.cpu_usage_percent.toFixed(0) + " %";
    element("card-memory").textContent = formatBytes(system.memory_used_bytes) + " / " + formatBytes(system.memory_total_bytes);
    element("card-workers").textContent = store.workers.length
      ? store.workers.map((worker) => worker.worker_id + ": " + worker.jobs).join(", ")
      : "none";
  }

  const SVG = "http://www.w3.org/2000/svg";

  function drawChart(svg, samples, valueOf, formatValue) {
    const width = 600;
    const height = 160;
    const top = 14;
    const bottom = 18;
    const children = [];
    svg.dataset.sampleCount = String(samples.length);
    if (samples.length === 0) {
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", "10");
      text.setAttribute("y", "80");
      text.textContent = "no samples yet";
      svg.replaceChildren(text);
      return;
    }
    const now = Date.now();
    const start = now - 3600 * 1000;
    const values = samples.map(valueOf);
    const maximum = Math.max(1, ...values);
    const x = (time) => ((time - start) / (3600 * 1000)) * width;
    const y = (value) => top + (1 - value / maximum) * (height - top - bottom);
    const points = samples.map((sample, index) => x(Date.parse(sample.at)).toFixed(1) + "," + y(values[index]).toFixed(1));
    const firstX = x(Date.parse(samples[0].at)).toFixed(1);
    const lastX = x(Date.parse(samples[samples.length - 1].at)).toFixed(1);
    const area = document.createElementNS(SVG, "polygon");
    area.setAttribute("class", "area");
    area.setAttribute("points", firstX + "," + (height - bottom) + " " + points.join(" ") + " " + lastX + "," + (height - bottom));
    children.push(area);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", "line");
    line.setAttribute("points", points.join(" "));
    children.push(line);
    const lastPoint = document.createElementNS(SVG, "circle");
    lastPoint.setAttribute("class", "point");
    lastPoint.setAttribute("cx", lastX);
    lastPoint.setAttribute("cy", y(values[values.length - 1]).toFixed(1));
    lastPoint.setAttribute("r", "3");
    children.push(lastPoint);
    const labels = [[4, 11, "max " + formatValue(maximum)], [4, height - 4, "−60 min"], [width - 30, height - 4, "now"]];
    for (const [labelX, labelY, content] of labels) {
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", String(labelX));
      text.setAttribute("y", String(labelY));
      text.textContent = content;
      children.push(text);
    }
    svg.replaceChildren(...children);
  }

  function jobsQuery() {
    const parameters = new URLSearchParams({ limit: String(JOBS_PAGE_SIZE), offset: String(jobsOffset) });
    const state = element("state-filter").value;
    if (state) parameters.set("state", state);
    const user = element("user-filter").value.trim();
    if (/^-?\d+$/.test(user)) parameters.set("user", user);
    return "/jobs?" + parameters.toString();
  }

  function renderJobsPage(page) {
    element("jobs-newer").disabled = page.offset === 0;
    element("jobs-older").disabled = !page.has_more;
    element("jobs-page").textContent = page.jobs.length === 0 ? "" :
      "jobs " + (page.offset + 1) + "–" + (page.offset + page.jobs.length);
  }

  function showJobsFrom(offset) {
    jobsOffset = Math.max(0, offset);
    stopPolling();
    refresh();
    refreshHistory();
  }

  function handleError(error) {
    if (error instanceof UnauthorizedError) {
      logout("The secret was not accepted.");
      return true;
    }
    element("connection-status").textContent = "error: " + error.message;
    return false;
  }

  async function refresh() {
    const mine = generation;
    try {
      const [jobs, stats] = await Promise.all([api(jobsQuery()), api("/stats")]);
      if (mine !== generation) return;
      renderJobs(jobs.jobs);
      renderJobsPage(jobs);
      renderStats(stats);
      element("jobs-message").textContent = "";
      element("connection-status").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      if (handleError(error)) return;
    }
    if (mine === generation) pollTimer = setTimeout(refresh, POLL_MILLISECONDS);
  }

  async function refreshHistory() {
    const mine = generation;
    try {
      const history = await api("/stats/history");
      if (mine !== generation) return;
      drawChart(element("chart-active"), history.samples, (sample) => sample.active_recordings, (value) => String(Math.round(value)));
      drawChart(element("chart-disk"), history.samples, (sample) => sample.recordings_bytes, formatBytes);
    } catch (error) {
      if (handleError(error)) return;
    }
    if (mine === generation) historyTimer = setTimeout(refreshHistory, HISTORY_MILLISECONDS);
  }

  function stopPolling() {
    generation += 1;
    clearTimeout(pollTimer);
    clearTimeout(historyTimer);
  }

  function showApp() {
    element("login-section").hidden = true;
    element("app-section").hidden = false;
    element("logout-button").hidden = false;
    stopPolling();
    refresh();
    refreshHistory();
  }

  function logout(message) {
    stopPolling();
    sessionStorage.removeItem(SECRET_KEY);
    element("app-section").hidden = true;
    element("logout-button").hidden = true;
    element("login-section").hidden = false;
    element("login-message").textContent = message || "";
    element("connection-status").textContent = "";
  }

  element("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = element("secret-input");
    sessionStorage.setItem(SECRET_KEY, input.value.trim());
    input.value = "";
    showApp();
  });

  element("logout-button").addEventListener("click", () => logout(""));

  element("jobs-body").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    button.disabled = true;
    try {
      await api("/jobs/" + encodeURIComponent(button.dataset.jobId) + "/" + button.dataset.action, { method: "POST" });
      element("jobs-message").textContent = "";
    } catch (error) {
      if (handleError(error)) return;
      element("jobs-message").textContent = error.message;
    }
    stopPolling();
    refresh();
    refreshHistory();
  });

  for (const id of ["state-filter", "user-filter"]) {
    element(id).addEventListener("change", () => showJobsFrom(0));
  }
  element("jobs-newer").addEventListener("click", () => showJobsFrom(jobsOffset - JOBS_PAGE_SIZE));
  element("jobs-older").addEventListener("click", () => showJobsFrom(jobsOffset + JOBS_PAGE_SIZE));

  takeSecretFromFragment();
  if (secret()) showApp(); else logout("");
})();
