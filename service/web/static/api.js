"use strict";
// What both pages share: calls to the service's own HTTP API, its error shape, the API token
// (asked for only once the server has answered 401; kept in this tab's sessionStorage), and a
// digit's 784 pixels as a small picture.

const TOKEN_KEY = "backprop-token";

async function callApi(method, path, { json, body, contentType, auth = false } = {}) {
  const headers = {};
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (contentType) {
    headers["Content-Type"] = contentType;
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body });
  let data = null;
  if ((response.headers.get("Content-Type") || "").includes("json")) data = await response.json();
  return { status: response.status, ok: response.ok, data };
}

function apiError(result) {
  const error = result.data && result.data.error;
  if (error && typeof error === "object") return error.message;
  if (typeof error === "string") return error;
  return `the server answered ${result.status}`;
}

function rememberToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function percent(value) {
  return `${(value * 100).toFixed(1)}%`;
}

// A 28x28 canvas of 784 grey levels (255: ink, drawn dark on light), described by ``label``.
function digitCanvas(pixels, label) {
  const canvas = document.createElement("canvas");
  canvas.width = 28;
  canvas.height = 28;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  pixels.forEach((value, i) => {
    image.data.set([255 - value, 255 - value, 255 - value, 255], i * 4);
  });
  context.putImageData(image, 0, 0);
  return canvas;
}
