"use strict";
// The dashboard's traffic section: each model's policy (GET /models/NAME/traffic) with the live
// figures of its versions, the events of its verdict and the shadow's disagreements as small
// pictures; a form sets the policy (PUT) or clears it (DELETE), with the token when one is needed.

const trafficViews = new Map();

function policyText(view) {
  const policy = view.policy;
  if (!policy) return `No policy: every request that names no version gets version ${view.default_version}.`;
  const parts = [`split ${Object.entries(policy.split).map(([v, w]) => `v${v}: ${w}`).join(", ")}`];
  if (policy.sticky_header) parts.push(`sticky by ${policy.sticky_header}`);
  if (policy.shadow) parts.push(`shadow v${policy.shadow.version} on ${percent(policy.shadow.fraction)} of requests`);
  return `${parts.join(" · ")} (since ${policy.set_at.replace("T", " ").slice(0, 19)})`;
}

function figuresTable(view) {
  const table = document.createElement("table");
  table.dataset.testid = "traffic-figures";
  const caption = document.createElement("caption");
  caption.className = "visually-hidden";
  caption.textContent = `Figures of ${view.name}'s versions`;
  const head = document.createElement("tr");
  for (const title of ["Version", "Requests", "Errors", "Mean confidence", "Shadow agreement", "Mean |Δp|"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = title;
    head.append(th);
  }
  const body = document.createElement("tbody");
  for (const [version, f] of Object.entries(view.figures)) {
    const row = document.createElement("tr");
    row.dataset.version = version;
    const cells = [
      `version ${version}`,
      String(f.requests),
      String(f.errors),
      f.mean_confidence == null ? "—" : percent(f.mean_confidence),
      f.agreement == null ? "—" : `${percent(f.agreement)} of ${f.compared}`,
      f.mean_absolute_difference == null ? "—" : f.mean_absolute_difference.toFixed(4),
    ];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      row.append(td);
    }
    body.append(row);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  table.append(caption, thead, body);
  return table;
}

function examplePicture(example) {
  const figure = document.createElement("figure");
  figure.className = "example";
  figure.dataset.testid = "disagreement";
  const said = `v${example.answered.version} said ${example.answered.label}, v${example.shadow.version} said ${example.shadow.label}`;
  const caption = document.createElement("figcaption");
  caption.textContent = said;
  figure.append(digitCanvas(example.pixels, `a digit on which ${said}`), caption);
  return figure;
}

function policyForm(name) {
  const form = document.createElement("form");
  form.className = "traffic-form";
  form.noValidate = true;
  const id = (field) => `traffic-${name}-${field}`;
  const fields = [
    ["split", "Split (version:weight …)", "1:90 2:10"],
    ["sticky", "Sticky header (optional)", "X-User-ID"],
    ["shadow", "Shadow version (optional)", ""],
    ["fraction", "Shadow fraction", "1"],
  ];
  const grid = document.createElement("div");
  grid.className = "fields";
  for (const [field, label, placeholder] of fields) {
    const labelElement = document.createElement("label");
    labelElement.htmlFor = id(field);
    labelElement.textContent = `${label} for ${name}`;
    const input = document.createElement("input");
    input.id = id(field);
    input.name = field;
    input.placeholder = placeholder;
    if (field === "fraction") input.value = "1";
    grid.append(labelElement, input);
  }
  const set = document.createElement("button");
  set.type = "submit";
  set.textContent = `Set the policy of ${name}`;
  const clear = document.createElement("button");
  clear.type = "button";
  clear.className = "secondary";
  clear.textContent = `Clear the policy of ${name}`;
  form.append(grid, set, clear);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = (field) => form.elements[field].value.trim();
    const split = {};
    for (const pair of value("split").split(/[\s,]+/).filter(Boolean)) {
      const [version, weight] = pair.split(":");
      split[version] = Number(weight ?? 1);
    }
    const body = { split };
    if (value("sticky")) body.sticky_header = value("sticky");
    if (value("shadow")) body.shadow = { version: Number(value("shadow")), fraction: Number(value("fraction") || 1) };
    changePolicy(name, "PUT", body);
  });
  clear.addEventListener("click", () => changePolicy(name, "DELETE"));
  return form;
}

async function changePolicy(name, method, json) {
  const status = document.getElementById("traffic-status");
  if (!tokenReady(status)) return;
  const result = await callApi(method, `/models/${encodeURIComponent(name)}/traffic`, { json, auth: true });
  if (result.status === 401) return askForToken(status, true);
  await refreshTraffic();
  status.textContent = result.ok
    ? `The traffic policy of ${name} is ${method === "PUT" ? "set" : "cleared"}.`
    : `Not changed: ${apiError(result)}`;
}

function trafficView(name) {
  let view = trafficViews.get(name);
  if (view) return view;
  const root = document.createElement("article");
  root.className = "traffic-model";
  root.dataset.model = name;
  const heading = document.createElement("h3");
  heading.textContent = name;
  const policy = document.createElement("p");
  policy.dataset.testid = "traffic-policy";
  const figures = document.createElement("div");
  figures.className = "table-wrap";
  const events = document.createElement("ul");
  events.className = "events";
  const examples = document.createElement("div");
  examples.className = "examples";
  root.append(heading, policy, figures, events, examples, policyForm(name));
  view = { root, policy, figures, events, examples };
  trafficViews.set(name, view);
  return view;
}

function showTraffic(data) {
  const view = trafficView(data.name);
  view.policy.textContent = policyText(data);
  view.figures.replaceChildren(...(Object.keys(data.figures).length ? [figuresTable(data)] : []));
  const events = (data.policy ? data.policy.events : []).map((event) => {
    const item = document.createElement("li");
    item.textContent = `${event.at.replace("T", " ").slice(0, 19)}: version ${event.version} ${event.kind === "left_split" ? "left the split" : "disagrees"}: it ${event.reason}`;
    return item;
  });
  view.events.replaceChildren(...events);
  view.examples.replaceChildren(...data.examples.map(examplePicture));
  return view.root;
}

let trafficTimer = null;
async function refreshTraffic() {
  clearTimeout(trafficTimer);
  try {
    const models = await callApi("GET", "/models");
    const status = document.getElementById("traffic-status");
    if (!models.ok) {
      status.textContent = `Traffic unavailable: ${apiError(models)}`;
      return;
    }
    const shown = [];
    for (const model of models.data.models) {
      const result = await callApi("GET", `/models/${encodeURIComponent(model.name)}/traffic`, { auth: true });
      if (result.ok) shown.push(showTraffic(result.data));
    }
    document.getElementById("traffic").replaceChildren(...shown);
  } finally {
    trafficTimer = document.hidden ? null : setTimeout(refreshTraffic, 4000);
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && trafficTimer === null) refreshTraffic();
});
refreshTraffic();
