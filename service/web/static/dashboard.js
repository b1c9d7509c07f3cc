"use strict";
// The dashboard: jobs with live progress (polled: every second while one is queued or running),
// their learning curves (GET /jobs/ID/curves.svg), the models with their metrics, a form for
// POST /train and "Make default" (PUT /models/NAME/default). When the server needs its API token
// (GET /healthz says so) the page asks for it before either is sent.

const jobViews = new Map();
let modelsShown = "";
let tokenRequired = false;

function askForToken(statusElement, refused) {
  document.getElementById("token-card").hidden = false;
  statusElement.textContent = refused
    ? "The server refused the token: check it, then try again."
    : "This server needs its API token: enter it above, then try again.";
  document.getElementById("token").focus();
}

// True when the request may go: the token is there, or not needed.
function tokenReady(statusElement) {
  if (!tokenRequired || sessionStorage.getItem(TOKEN_KEY)) return true;
  askForToken(statusElement, false);
  return false;
}

const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
tokenInput.addEventListener("input", (event) => rememberToken(event.target.value.trim()));

// /healthz's answer, asked once at load: whether the token is needed, whether drift is counted.
let health = Promise.resolve({});

async function checkTokenRequired() {
  health = callApi("GET", "/healthz").then((result) => (result.ok ? result.data : {}));
  tokenRequired = Boolean((await health).token_required);
  document.getElementById("token-card").hidden = !tokenRequired;
}

function trainRequest(form) {
  const value = (name) => form.elements[name].value.trim();
  const body = {
    dataset: value("dataset"),
    hidden: value("hidden").split(/[\s,]+/).filter(Boolean).map(Number),
    epochs: Number(value("epochs")),
    batch_size: Number(value("batch_size")),
    optimizer: value("optimizer"),
    learning_rate: Number(value("learning_rate")),
    validation_split: Number(value("validation_split")),
    seed: Number(value("seed")),
    make_default: form.elements.make_default.checked,
  };
  if (value("model")) body.model = value("model");
  return body;
}

document.getElementById("train-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = document.getElementById("train-status");
  if (!tokenReady(status)) return;
  const name = event.target.elements.model;
  if (!name.checkValidity()) {
    // The store's rule, in the words under the field: said before anything is sent.
    status.textContent = `Not started: a model name is ${document.getElementById("model-name-hint").textContent}.`;
    name.focus();
    return;
  }
  status.textContent = "Sending…";
  const result = await callApi("POST", "/train", { json: trainRequest(event.target), auth: true });
  if (result.status === 401) return askForToken(status, true);
  if (!result.ok) {
    status.textContent = `Not started: ${apiError(result)}`;
    return;
  }
  status.textContent = `Job ${result.data.id.slice(0, 8)} is queued.`;
  refreshJobs();
});

function jobTitle(job) {
  const asked = job.request;
  return `Job ${job.id.slice(0, 8)}: ${asked.model || asked.dataset}, ${(asked.hidden || []).join("-")} hidden, ${asked.epochs} epochs`;
}

function jobView(job) {
  let view = jobViews.get(job.id);
  if (view) return view;
  const root = document.createElement("article");
  root.className = "job";
  root.dataset.testid = "job";
  root.dataset.job = job.id;
  const heading = document.createElement("h3");
  heading.textContent = jobTitle(job);
  const state = document.createElement("p");
  state.dataset.testid = "job-status";
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.setAttribute("aria-label", `progress of job ${job.id.slice(0, 8)}`);
  const detail = document.createElement("p");
  detail.className = "hint";
  const figure = document.createElement("img");
  figure.alt = `loss and accuracy per epoch of job ${job.id.slice(0, 8)}`;
  figure.width = 520;
  figure.height = 462;
  figure.dataset.testid = "curves";
  root.append(heading, state, bar, detail, figure);
  view = { root, state, bar, detail, figure, epochs: -1 };
  jobViews.set(job.id, view);
  return view;
}

function showJob(job) {
  const view = jobView(job);
  view.state.textContent = job.status;
  view.state.className = `state-${job.status}`;
  view.bar.value = job.progress.percent;
  const parts = [`epoch ${job.progress.epoch} of ${job.request.epochs}`, `${job.progress.percent.toFixed(0)}%`];
  const last = job.history[job.history.length - 1];
  if (last && last.val_accuracy != null) parts.push(`validation accuracy ${percent(last.val_accuracy)}`);
  if (job.result) parts.push(`made ${job.result.model} version ${job.result.version}`);
  if (job.error) parts.push(job.error);
  if (job.note) parts.push(job.note);
  view.detail.textContent = parts.join(" · ");
  if (view.epochs !== job.history.length) {
    view.epochs = job.history.length;
    view.figure.src = `${job.curves}?epochs=${job.history.length}`;
  }
  return view.root;
}

let pollTimer = null;
async function refreshJobs() {
  clearTimeout(pollTimer);
  let busy = false;
  try {
    const result = await callApi("GET", "/jobs?limit=12");
    const status = document.getElementById("jobs-status");
    if (!result.ok) {
      status.textContent = `Jobs unavailable: ${apiError(result)}`;
    } else {
      const jobs = result.data.jobs;
      status.textContent = jobs.length ? "" : "No jobs yet: start one above.";
      const list = document.getElementById("jobs");
      list.replaceChildren(...jobs.map(showJob));
      busy = jobs.some((job) => job.status === "queued" || job.status === "running");
      const finished = jobs.filter((job) => job.status === "succeeded").map((job) => job.id).join();
      if (finished !== modelsShown) {
        modelsShown = finished;
        refreshModels();
      }
    }
  } finally {
    // A hidden tab costs the server nothing: polling resumes when it is shown again.
    pollTimer = document.hidden ? null : setTimeout(refreshJobs, busy ? 1000 : 4000);
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && pollTimer === null) refreshJobs();
});

function accuracyText(metrics) {
  if (!metrics) return "—";
  const value = metrics.held_out_accuracy ?? metrics.validation_accuracy ?? metrics.test_accuracy;
  if (value == null) return "—";
  const samples = metrics.held_out_samples ?? metrics.validation_samples ?? metrics.test_samples;
  return samples ? `${percent(value)} of ${samples}` : percent(value);
}

async function makeDefault(name, version, button) {
  const status = document.getElementById("models-status");
  if (!tokenReady(status)) return;
  button.disabled = true;
  const result = await callApi("PUT", `/models/${encodeURIComponent(name)}/default`, {
    json: { version, service_wide: true },
    auth: true,
  });
  button.disabled = false;
  if (result.status === 401) return askForToken(status, true);
  await refreshModels(); // the table first, then the news: both agree when it is read
  status.textContent = result.ok
    ? `${name} version ${version} is now the default.`
    : `Not changed: ${apiError(result)}`;
}

// A version's drift (GET .../drift): its status and how many answers it rests on, the reasons on
// hover and for screen readers. Versions not trained here have no reference to compare with.
function driftCell(name, version) {
  const td = document.createElement("td");
  td.dataset.testid = "drift";
  td.className = "drift";
  if (!version.drift_reference) {
    td.textContent = "no reference";
    return td;
  }
  td.textContent = "…";
  health.then(async ({ drift_counted: counted }) => {
    if (!counted) {
      td.textContent = "not counted";
      td.title = "the service counts answers for drift with BACKPROP_DRIFT=1";
      return;
    }
    const path = `/models/${encodeURIComponent(name)}/versions/${version.version}/drift`;
    const result = await callApi("GET", path);
    if (!result.ok) {
      td.textContent = "unavailable";
      td.title = apiError(result);
      return;
    }
    const report = result.data;
    td.textContent = `${report.status}, ${report.predictions.toLocaleString("en")} answers`;
    td.title = report.reasons.join("; ");
    td.setAttribute("aria-description", td.title);
  });
  return td;
}

async function refreshModels() {
  const result = await callApi("GET", "/models");
  const body = document.querySelector("#models tbody");
  if (!result.ok) {
    document.getElementById("models-status").textContent = `Models unavailable: ${apiError(result)}`;
    return;
  }
  const rows = [];
  for (const model of result.data.models) {
    const head = document.createElement("tr");
    head.className = "model-row";
    const cell = document.createElement("th");
    cell.colSpan = 5;
    cell.scope = "colgroup";
    cell.textContent = model.is_service_default ? `${model.name} (the service's default model)` : model.name;
    head.append(cell);
    rows.push(head);
    for (const version of [...model.versions].reverse()) {
      const row = document.createElement("tr");
      row.dataset.testid = "version";
      row.dataset.model = model.name;
      row.dataset.version = version.version;
      const cells = [`version ${version.version}`, accuracyText(version.metrics), version.created.slice(0, 19).replace("T", " ")];
      cells.forEach((text, column) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (column === 2) td.className = "created";
        row.append(td);
      });
      row.append(driftCell(model.name, version));
      const action = document.createElement("td");
      if (version.is_default && model.is_service_default) {
        action.textContent = "default";
      } else {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "secondary";
        button.textContent = "Make default";
        button.setAttribute("aria-label", `Make default: ${model.name} version ${version.version}`);
        button.addEventListener("click", () => makeDefault(model.name, version.version, button));
        action.append(button);
      }
      row.append(action);
      rows.push(row);
    }
  }
  body.replaceChildren(...rows);
}

checkTokenRequired();
refreshJobs();
refreshModels();
