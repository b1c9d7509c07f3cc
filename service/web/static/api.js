"use strict";
// What both pages share: calls to the service's own HTTP API, its error shape, and the API token
// (asked for only once the server has answered 401; kept in this tab's sessionStorage).

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
