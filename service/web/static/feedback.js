"use strict";
// The dashboard's corrections (GET /feedback, token holders): how many of each digit, the mistakes
// they reveal, the newest as small pictures that can be relabelled or deleted, and the two jobs that
// learn from them: a fine-tuning of the service's default model, or a new version trained from
// scratch with the form's settings, both on MNIST with the corrections added (mnist+feedback).

const FINE_TUNING = { epochs: 2, learning_rate: 0.0001 }; // a few gentle epochs: learn, do not forget
const SHOWN_CORRECTIONS = 48;

function countsTable(summary) {
  const table = document.createElement("table");
  const caption = document.createElement("caption");
  caption.className = "visually-hidden";
  caption.textContent = "Corrections of each digit";
  const head = document.createElement("tr");
  const row = document.createElement("tr");
  const corner = document.createElement("th");
  corner.scope = "row";
  corner.textContent = "digit";
  const counted = document.createElement("th");
  counted.scope = "row";
  counted.textContent = "corrections";
  head.append(corner);
  row.append(counted);
  summary.per_label.forEach((count, digit) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = String(digit);
    const td = document.createElement("td");
    td.textContent = String(count);
    head.append(th);
    row.append(td);
  });
  table.append(caption, head, row);
  return table;
}

function confusionItems(summary) {
  const pairs = [];
  summary.confusions.forEach((row, answered) =>
    row.forEach((count, corrected) => {
      if (count && answered !== corrected) pairs.push({ answered, corrected, count });
    }),
  );
  pairs.sort((a, b) => b.count - a.count);
  return pairs.slice(0, 5).map(({ answered, corrected, count }) => {
    const item = document.createElement("li");
    item.textContent = `answered ${answered} when it was ${corrected}: ${count} time${count === 1 ? "" : "s"}`;
    return item;
  });
}

function correctionFigure(example) {
  const figure = document.createElement("figure");
  figure.className = "example";
  figure.dataset.testid = "correction";
  const said = example.predicted == null ? `was ${example.label}` : `answered ${example.predicted}, was ${example.label}`;
  const caption = document.createElement("figcaption");
  caption.textContent = said;
  const relabel = document.createElement("select");
  relabel.setAttribute("aria-label", `the right digit of correction ${example.id}`);
  for (let digit = 0; digit <= 9; digit += 1) relabel.append(new Option(String(digit), String(digit)));
  relabel.value = String(example.label);
  relabel.addEventListener("change", () => changeCorrection("PATCH", example.id, { label: Number(relabel.value) }));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "secondary";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete correction ${example.id}`);
  remove.addEventListener("click", () => changeCorrection("DELETE", example.id));
  figure.append(digitCanvas(example.pixels, `a digit ${said}`), caption, relabel, remove);
  return figure;
}

async function changeCorrection(method, id, json) {
  const status = document.getElementById("corrections-status");
  const result = await callApi(method, `/feedback/${id}`, { json, auth: true });
  if (result.status === 401) return askForToken(status, true);
  status.textContent = result.ok ? `Correction ${id} ${method === "DELETE" ? "deleted" : "relabelled"}.` : apiError(result);
  refreshCorrections();
}

let correctionsTimer = null;
let correctionsShown = "";
async function refreshCorrections() {
  clearTimeout(correctionsTimer);
  const status = document.getElementById("corrections-status");
  try {
    await health; // whether the token is needed: without it, the list is not asked for
    if (tokenRequired && !sessionStorage.getItem(TOKEN_KEY)) {
      status.textContent = "Enter the API token above to see the corrections.";
      return;
    }
    // Pixels (about 3 KB a correction) are asked for only when the list changed.
    const path = (pixels) => `/feedback?corrected=true&with_pixels=${pixels}&limit=${SHOWN_CORRECTIONS}`;
    const result = await callApi("GET", path(false), { auth: true });
    if (result.status === 401) {
      status.textContent = "Enter the API token above to see the corrections.";
      return;
    }
    if (!result.ok) {
      status.textContent = `Corrections unavailable: ${apiError(result)}`;
      return;
    }
    const { summary, examples } = result.data;
    if (!status.textContent.startsWith("Correction") && !status.textContent.startsWith("Job")) {
      status.textContent = `${summary.corrections} correction${summary.corrections === 1 ? "" : "s"}, ${summary.kept_inputs} kept input${summary.kept_inputs === 1 ? "" : "s"}.`;
    }
    document.getElementById("corrections-counts").replaceChildren(countsTable(summary));
    document.getElementById("confusions").replaceChildren(...confusionItems(summary));
    const listed = (list) => list.map((e) => `${e.id}:${e.label}`).join();
    if (listed(examples) !== correctionsShown) {
      const full = await callApi("GET", path(true), { auth: true });
      if (full.ok) {
        correctionsShown = listed(full.data.examples);
        document.getElementById("corrections").replaceChildren(...full.data.examples.map(correctionFigure));
      }
    }
  } finally {
    correctionsTimer = document.hidden ? null : setTimeout(refreshCorrections, 5000);
  }
}

async function trainOnCorrections(fineTune) {
  const status = document.getElementById("corrections-status");
  if (!tokenReady(status)) return;
  let body;
  if (fineTune) {
    const models = await callApi("GET", "/models");
    const chosen = models.ok && models.data.models.find((model) => model.is_service_default);
    body = { dataset: "mnist+feedback", fine_tune: true, ...FINE_TUNING };
    if (chosen) body.model = chosen.name;
  } else {
    body = { ...trainRequest(document.getElementById("train-form")), dataset: "mnist+feedback" };
  }
  status.textContent = "Sending…";
  const result = await callApi("POST", "/train", { json: body, auth: true });
  if (result.status === 401) return askForToken(status, true);
  status.textContent = result.ok
    ? `Job ${result.data.id.slice(0, 8)} is queued: ${fineTune ? "fine-tuning" : "training"} on MNIST and the corrections.`
    : `Not started: ${apiError(result)}`;
  if (result.ok) refreshJobs();
}

let tokenTyped = null;
document.getElementById("token").addEventListener("input", () => {
  clearTimeout(tokenTyped); // a token being typed: look again once it rests
  tokenTyped = setTimeout(refreshCorrections, 300);
});
document.getElementById("fine-tune").addEventListener("click", () => trainOnCorrections(true));
document.getElementById("train-with-corrections").addEventListener("click", () => trainOnCorrections(false));
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && correctionsTimer === null) refreshCorrections();
});
refreshCorrections();
