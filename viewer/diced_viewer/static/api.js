// Small helpers over the viewer's HTTP API (documented at /openapi.json).

export class ApiError extends Error {}

async function check(response) {
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText}`;
  try {
    message = (await response.json()).error || message;
  } catch {
    // not JSON: keep the status line
  }
  throw new ApiError(message);
}

export async function getJSON(path) {
  return (await check(await fetch(path))).json();
}

// A server started with --token needs it for changes: the page is opened once as
// /?token=SECRET; the token then lives in this tab's sessionStorage, not in the address bar.
function writeToken() {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem("diced-token", given);
    url.searchParams.delete("token");
    history.replaceState(null, "", url);
  }
  return sessionStorage.getItem("diced-token");
}

const TOKEN = writeToken();

export async function postJSON(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  return (await check(response)).json();
}

const TYPED = {
  "|u1": Uint8Array, "|i1": Int8Array, "|b1": Uint8Array,
  "<u2": Uint16Array, "<i2": Int16Array, "<u4": Uint32Array, "<i4": Int32Array,
  "<u8": BigUint64Array, "<i8": BigInt64Array, "<f4": Float32Array, "<f8": Float64Array,
};

// One plane of an array: {values (typed array, row-major), height, width, origin, step}.
export async function getPlane(uuid, array, params) {
  const query = new URLSearchParams(params);
  const path = `/api/node/${enc(uuid)}/${enc(array)}/slice.raw?${query}`;
  const response = await check(await fetch(path));
  const pair = (name) => response.headers.get(name).split(",").map(Number);
  const [height, width] = pair("X-Diced-Shape");
  const Typed = TYPED[response.headers.get("X-Diced-Dtype")] || Uint8Array;
  return {
    values: new Typed(await response.arrayBuffer()), height, width,
    origin: pair("X-Diced-Origin"), step: pair("X-Diced-Step"),
  };
}

export const enc = encodeURIComponent;

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== false && value != null) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c != null));
  return node;
}
