"use strict";
// The draw page: strokes on a canvas (mouse, pen or touch, through pointer events); after each
// stroke the picture goes to POST /predict as a PNG, and the server prepares it as MNIST's digits
// were prepared (service/images.py). Undo replays the strokes but the last. After each prediction,
// "Wrong? It was:" sends the pixels the model saw with the right digit to POST /feedback.

const INK_WIDTH = 20;
const pad = document.getElementById("pad");
const context = pad.getContext("2d");
const strokes = [];
let current = null;
let asked = 0; // answers to older requests than the newest are dropped
let answered = null; // what the last prediction saw and said: what a correction sends

function paint() {
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, pad.width, pad.height);
  context.strokeStyle = "#000000";
  context.fillStyle = "#000000";
  context.lineWidth = INK_WIDTH;
  context.lineCap = "round";
  context.lineJoin = "round";
  for (const stroke of strokes) {
    if (stroke.length === 1) {
      context.beginPath();
      context.arc(stroke[0][0], stroke[0][1], INK_WIDTH / 2, 0, 2 * Math.PI);
      context.fill();
      continue;
    }
    context.beginPath();
    context.moveTo(stroke[0][0], stroke[0][1]);
    for (const [x, y] of stroke.slice(1)) context.lineTo(x, y);
    context.stroke();
  }
  document.getElementById("undo").disabled = strokes.length === 0;
  document.getElementById("clear").disabled = strokes.length === 0;
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  current = [point(event)];
  strokes.push(current);
  paint();
});
pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  current.push(point(event));
  paint();
});
function endStroke() {
  if (!current) return;
  current = null;
  predictDrawing();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("undo").addEventListener("click", () => {
  strokes.pop();
  paint();
  strokes.length ? predictDrawing() : showNothing();
});
document.getElementById("clear").addEventListener("click", () => {
  strokes.length = 0;
  paint();
  showNothing();
});
document.getElementById("model").addEventListener("change", () => {
  if (strokes.length) predictDrawing();
});
document.getElementById("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) predict(file, file.type || "image/png");
});

function showNothing() {
  asked += 1;
  document.getElementById("prediction").textContent = "Nothing drawn yet";
  document.getElementById("model-used").textContent = "";
  document.getElementById("error").textContent = "";
  drawBars(null);
  offerCorrection(null);
}

// The ten buttons of "Wrong? It was:", made once; shown while there is an answer to correct and
// the service takes corrections (GET /healthz says so).
const feedbackAccepted = callApi("GET", "/healthz").then((result) => result.ok && result.data.feedback_accepted);

for (let digit = 0; digit <= 9; digit += 1) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary";
  button.textContent = String(digit);
  button.setAttribute("aria-label", `It was a ${digit}`);
  button.dataset.testid = `correct-${digit}`;
  button.addEventListener("click", () => sendCorrection(digit));
  document.getElementById("digits").append(button);
}

async function offerCorrection(answer) {
  answered = answer;
  document.getElementById("correction-status").textContent = "";
  document.getElementById("correction").hidden = !(answer && (await feedbackAccepted));
}

async function sendCorrection(digit) {
  const status = document.getElementById("correction-status");
  if (!answered) return;
  const body = { ...answered, label: digit };
  status.textContent = "Sending…";
  const result = await callApi("POST", "/feedback", { json: body });
  status.textContent = result.ok
    ? `Thank you: saved as a ${digit}, for the next training on corrections.`
    : `Not saved: ${apiError(result)}`;
}

function drawBars(probabilities) {
  const list = document.getElementById("bars");
  list.replaceChildren();
  if (!probabilities) return;
  const best = probabilities.indexOf(Math.max(...probabilities));
  probabilities.forEach((p, digit) => {
    const item = document.createElement("li");
    item.dataset.testid = "bar";
    if (digit === best) item.classList.add("best");
    const label = document.createElement("span");
    label.textContent = String(digit);
    const track = document.createElement("span");
    track.className = "track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = percent(p);
    track.append(fill);
    const value = document.createElement("span");
    value.className = "percent";
    value.textContent = percent(p);
    item.append(label, track, value);
    list.append(item);
  });
}

function predictDrawing() {
  // toDataURL, not toBlob: Chromium encodes a toBlob in idle time, which can come a second later.
  const [, data] = pad.toDataURL("image/png").split(",");
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  predict(new Blob([bytes], { type: "image/png" }), "image/png");
}

async function predict(blob, type) {
  const mine = ++asked;
  const [model, version] = document.getElementById("model").value.split("@");
  const query = new URLSearchParams({ with_pixels: "true" });
  if (model) query.set("model", model);
  if (version) query.set("version", version);
  let result;
  try {
    result = await callApi("POST", `/predict?${query}`, { body: blob, contentType: type });
  } catch (failure) {
    result = { status: 0, data: { error: { message: `the service could not be reached (${failure})` } } };
  }
  if (mine !== asked) return;
  const error = document.getElementById("error");
  if (!result.ok) {
    error.textContent = apiError(result);
    return;
  }
  error.textContent = "";
  const answer = result.data.predictions[0];
  document.getElementById("prediction").textContent =
    `${answer.label} (${percent(answer.probabilities[answer.label])} sure)`;
  document.getElementById("model-used").textContent =
    `by ${result.data.model.name} version ${result.data.model.version}`;
  drawBars(answer.probabilities);
  const { name, version: used } = result.data.model;
  offerCorrection({ pixels: answer.pixels, predicted: answer.label, model: name, version: used });
}

async function listModels() {
  const result = await callApi("GET", "/models");
  if (!result.ok) return;
  const select = document.getElementById("model");
  for (const model of result.data.models) {
    const option = new Option(`${model.name}, its default version (${model.default_version})`, model.name);
    select.append(option);
    for (const version of model.versions) {
      select.append(new Option(`${model.name} version ${version.version}`, `${model.name}@${version.version}`));
    }
  }
}

paint();
listModels();
