// The array page: an orthogonal slice view with slice slider, zoom and pan, contrast,
// label colours, the value under the cursor, a compare-with-version mode (changed chunks
// from the repo's diff, which walks both versions' chunk trees, so it stays fast on huge
// arrays) and, on a merge version, the conflicts of the merge.
import { el, enc, getJSON, getPlane } from "./api.js";
import { neuroglancerLink } from "./neuroglancer.js";

function axisNames(ndim) {
  if (ndim === 2) return ["y", "x"];
  if (ndim === 3) return ["z", "y", "x"];
  return Array.from({ length: ndim }, (_, i) => `axis ${i}`);
}

// A colour per label id (0 is background): a multiplicative hash of the id's two halves.
export function labelColour(id) {
  const big = BigInt(id);
  const lo = Number(big & 0xffffffffn);
  const hi = Number((big >> 32n) & 0xffffffffn);
  let h = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d) >>> 0;
  return [96 + (h & 0x7f), 96 + ((h >>> 8) & 0x7f), 96 + ((h >>> 16) & 0x7f)];
}

function planeRange(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    const n = Number(v);
    if (Number.isFinite(n)) { if (n < lo) lo = n; if (n > hi) hi = n; }
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

// RGBA pixels of a plane: grey levels of the window [lo, hi], or label colours.
function toImageData(plane, { lo, hi, label }) {
  const image = new ImageData(Math.max(plane.width, 1), Math.max(plane.height, 1));
  const px = image.data;
  const span = hi > lo ? hi - lo : 1;
  const cache = new Map();
  plane.values.forEach((v, i) => {
    let r; let g; let b;
    if (label) {
      const n = Number(v);
      const key = typeof v === "bigint" ? v : BigInt(Number.isFinite(n) ? Math.trunc(n) : 0);
      if (key === 0n) { r = g = b = 0; } else {
        let c = cache.get(key);
        if (!c) { c = labelColour(key); cache.set(key, c); }
        [r, g, b] = c;
      }
    } else {
      r = g = b = Math.round(Math.min(255, Math.max(0, ((Number(v) - lo) / span) * 255)));
    }
    px.set([r, g, b, 255], i * 4);
  });
  return image;
}

function paint(canvas, plane, display) {
  canvas.width = Math.max(plane.width, 1);
  canvas.height = Math.max(plane.height, 1);
  canvas.getContext("2d").putImageData(toImageData(plane, display), 0, 0);
}

class SliceCanvas {
  // One displayed plane: a canvas drawn from an off-screen canvas of plane pixels.
  constructor(id, view) {
    this.view = view;
    this.canvas = el("canvas", { id, class: "slice", width: 512, height: 512 });
    this.data = el("canvas", { id: `${id}-data`, class: "data", hidden: true });
    this.plane = null;
    // A full-resolution window of a zoomed-in view, drawn over the downsampled plane.
    this.detail = null;
    this.detailData = el("canvas", { class: "data", hidden: true });
  }

  setPlane(plane, display) {
    this.plane = plane;
    this.detail = null;
    paint(this.data, plane, display);
  }

  setDetail(plane, display) {
    this.detail = plane;
    if (plane) paint(this.detailData, plane, display);
  }

  repaint(display) {
    if (this.plane) paint(this.data, this.plane, display);
    if (this.detail) paint(this.detailData, this.detail, display);
  }

  // The value and absolute coordinates (row, col) under plane offset (row, col) in voxels.
  valueAt(row, col) {
    const p = this.plane;
    const r = p.origin[0] + row;
    const c = p.origin[1] + col;
    for (const q of [this.detail, p]) {
      if (!q) continue;
      const i = Math.floor((r - q.origin[0]) / q.step[0]);
      const j = Math.floor((c - q.origin[1]) / q.step[1]);
      if (i >= 0 && j >= 0 && i < q.height && j < q.width) {
        return { value: q.values[i * q.width + j], r: q.origin[0] + i * q.step[0],
                 c: q.origin[1] + j * q.step[1] };
      }
    }
    return null;
  }

  draw(changed, conflicts = []) {
    const ctx = this.canvas.getContext("2d");
    const { scale, panX, panY } = this.view;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#222";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.plane) return;
    const [sr, sc] = this.plane.step;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.data, panX, panY, this.plane.width * sc * scale, this.plane.height * sr * scale);
    const d = this.detail;
    if (d) {
      ctx.drawImage(this.detailData, panX + (d.origin[1] - this.plane.origin[1]) * scale,
                    panY + (d.origin[0] - this.plane.origin[0]) * scale,
                    d.width * d.step[1] * scale, d.height * d.step[0] * scale);
    }
    ctx.strokeStyle = "#ff3b30";
    ctx.lineWidth = 2;
    for (const rect of changed) {
      ctx.strokeRect(panX + rect.c0 * scale, panY + rect.r0 * scale,
                     (rect.c1 - rect.c0) * scale, (rect.r1 - rect.r0) * scale);
    }
    ctx.strokeStyle = "#e11d48";
    ctx.setLineDash([4, 3]);
    for (const rect of conflicts) {
      ctx.strokeRect(panX + rect.c0 * scale, panY + rect.r0 * scale,
                     Math.max(1, rect.c1 - rect.c0) * scale, Math.max(1, rect.r1 - rect.r0) * scale);
    }
    ctx.setLineDash([]);
  }
}

export async function arrayPage(app, setCrumbs, repoName, uuid, name) {
  const [info, repo] = await Promise.all([
    getJSON(`/api/node/${uuid}/${enc(name)}/info`), getJSON(`/api/repos/${enc(repoName)}`)]);
  setCrumbs({ text: "repos", href: "#/" }, { text: repoName, href: `#/repo/${enc(repoName)}` },
            { text: uuid.slice(0, 8), href: `#/repo/${enc(repoName)}/${uuid}` }, { text: name });
  const ndim = info.ndim;
  const names = axisNames(ndim);
  if (ndim < 2) {
    app.replaceChildren(el("h1", {}, name), el("p", {}, "1-D arrays have no planes to show."));
    return;
  }
  const state = {
    rows: ndim - 2, cols: ndim - 1,
    index: info.bounds.map(([lo, hi]) => Math.max(lo, Math.floor((lo + hi) / 2))),
    label: info.islabel3D, lo: null, hi: null,
    other: null, diff: null, conflicts: null,
  };
  // The node shown (the address may name it by a tag, a branch or a prefix).
  const here = repo.nodes.find((n) => n.uuid === info.Base.DataUUID);
  const view = { scale: 1, panX: 0, panY: 0, fitted: false };
  const main = new SliceCanvas("slice", view);
  const second = new SliceCanvas("slice-other", view);
  const cursor = el("div", { id: "cursor-info", class: "mono" }, "move the pointer over the image");
  const changedList = el("ul", { id: "changed-chunks", class: "mono" });
  const conflictList = el("ul", { id: "merge-conflicts", class: "mono" });
  const sliders = el("div", { id: "sliders" });
  const loInput = el("input", { id: "contrast-lo", type: "number", step: "any" });
  const hiInput = el("input", { id: "contrast-hi", type: "number", step: "any" });
  const labelBox = el("input", { id: "label-colours", type: "checkbox", checked: state.label });
  const rowsSel = el("select", { id: "rows-axis" }, names.map((n, i) => el("option", { value: i }, n)));
  const colsSel = el("select", { id: "cols-axis" }, names.map((n, i) => el("option", { value: i }, n)));
  const compareSel = el("select", { id: "compare-version" }, el("option", { value: "" }, "—"),
    repo.nodes.filter((n) => n.uuid !== info.Base.DataUUID).map((n) => el("option", { value: n.uuid },
      `${n.uuid.slice(0, 8)} ${n.branch} ${n.locked ? n.lock_message : "(open)"}` +
      repo.tags.filter((t) => t.uuid === n.uuid).map((t) => ` [tag ${t.name}]`).join(""))));
  const otherWrap = el("div", { class: "view", id: "view-other", hidden: true },
    el("div", { class: "caption", id: "other-caption" }), second.canvas);
  let request = 0;

  const display = () => ({ lo: state.lo, hi: state.hi, label: state.label });

  function changedRects() {
    if (!state.diff || !main.plane) return [];
    const chunks = state.diff.chunks;
    const [r0, c0] = main.plane.origin;
    return state.diff.changed.filter((k) => k.every((kc, axis) => axis === state.rows
      || axis === state.cols || Math.floor(state.index[axis] / chunks[axis]) === kc))
      .map((k) => ({ key: k, r0: k[state.rows] * chunks[state.rows] - r0,
                     r1: (k[state.rows] + 1) * chunks[state.rows] - r0,
                     c0: k[state.cols] * chunks[state.cols] - c0,
                     c1: (k[state.cols] + 1) * chunks[state.cols] - c0 }));
  }

  // Conflict boxes (voxels, numpy order) that cut the displayed plane, in plane offsets.
  function conflictRects() {
    if (!state.conflicts || !main.plane) return [];
    const [r0, c0] = main.plane.origin;
    return state.conflicts.filter((c) => c.box && c.box.every(([lo, hi], axis) => axis === state.rows
      || axis === state.cols || (state.index[axis] >= lo && state.index[axis] < hi)))
      .map((c) => ({ r0: c.box[state.rows][0] - r0, r1: c.box[state.rows][1] - r0,
                     c0: c.box[state.cols][0] - c0, c1: c.box[state.cols][1] - c0 }));
  }

  function redraw() {
    const rects = changedRects();
    const clashes = conflictRects();
    main.draw(rects, clashes);
    if (state.other) second.draw(rects, clashes);
    document.getElementById("conflict-count")?.replaceChildren(state.conflicts
      ? `${clashes.length} of the merge's ${state.conflicts.length} conflicts cut this plane` : "");
    changedList.replaceChildren(...rects.map((r) => el("li", { class: "changed-chunk" }, `chunk (${r.key.join(", ")})`)));
    document.getElementById("changed-count")?.replaceChildren(
      state.diff ? `${rects.length} changed chunks in this plane (${state.diff.changed.length} in the array)` : "");
  }

  function fit() {
    const p = main.plane;
    const h = p.height * p.step[0];
    const w = p.width * p.step[1];
    view.scale = Math.min(main.canvas.width / Math.max(w, 1), main.canvas.height / Math.max(h, 1));
    view.panX = (main.canvas.width - w * view.scale) / 2;
    view.panY = (main.canvas.height - h * view.scale) / 2;
  }

  async function load(refit) {
    const mine = ++request;
    // A plane of the canvas's size: the server reads the coarsest pyramid level that fills it.
    const params = { rows: state.rows, cols: state.cols, index: state.index.join(","),
                     width: main.canvas.width, height: main.canvas.height };
    const [plane, other] = await Promise.all([
      getPlane(uuid, name, params),
      state.other ? getPlane(state.other, name, params).catch(() => null) : null]);
    if (mine !== request) return;
    if (state.lo === null || state.hi === null) {
      const [lo, hi] = info.dtype === "uint8" ? [0, 255] : planeRange(plane.values);
      state.lo ??= lo;
      state.hi ??= hi;
      loInput.value = state.lo;
      hiInput.value = state.hi;
    }
    main.setPlane(plane, display());
    if (other) second.setPlane(other, display());
    if (refit || !view.fitted) { fit(); view.fitted = true; }
    redraw();
    fetchDetail();
    main.canvas.dataset.loaded = `${state.rows}|${state.cols}|${state.index.join(",")}|${state.other || ""}`;
  }

  // When zoomed into a downsampled plane, fetch the visible window at full resolution.
  let detailRequest = 0;
  let detailTimer = null;
  function fetchDetail() {
    clearTimeout(detailTimer);
    detailTimer = setTimeout(async () => {
      const p = main.plane;
      if (!p || (p.step[0] === 1 && p.step[1] === 1)) return;
      const mine = ++detailRequest;
      const r0 = p.origin[0] + Math.max(0, Math.floor(-view.panY / view.scale));
      const c0 = p.origin[1] + Math.max(0, Math.floor(-view.panX / view.scale));
      const r1 = p.origin[0] + Math.ceil((main.canvas.height - view.panY) / view.scale);
      const c1 = p.origin[1] + Math.ceil((main.canvas.width - view.panX) / view.scale);
      if (r1 - r0 >= p.height * p.step[0] && c1 - c0 >= p.width * p.step[1]) return;
      const params = { rows: state.rows, cols: state.cols, index: state.index.join(","),
                       region: [r0, r1, c0, c1].join(","), width: main.canvas.width,
                       height: main.canvas.height };
      try {
        const [detail, other] = await Promise.all([
          getPlane(uuid, name, params),
          state.other ? getPlane(state.other, name, params).catch(() => null) : null]);
        if (mine !== detailRequest || p !== main.plane) return;
        main.setDetail(detail, display());
        if (other) second.setDetail(other, display());
        redraw();
        main.canvas.dataset.detail = params.region;
      } catch {
        // the window left the array: keep the downsampled plane
      }
    }, 150);
  }

  function buildSliders() {
    sliders.replaceChildren(...state.index.map((value, axis) => {
      if (axis === state.rows || axis === state.cols) return null;
      const [lo, hi] = info.bounds[axis];
      const number = el("input", { type: "number", id: `index-${axis}-value`, min: lo, max: hi - 1, value });
      const range = el("input", { type: "range", id: `index-${axis}`, min: lo, max: Math.max(lo, hi - 1), value });
      const set = (v) => {
        state.index[axis] = Math.min(hi - 1, Math.max(lo, Number(v)));
        range.value = number.value = state.index[axis];
        load(false);
      };
      range.addEventListener("input", () => set(range.value));
      number.addEventListener("change", () => set(number.value));
      return el("label", { class: "slider" }, `${names[axis]} `, range, number);
    }).filter(Boolean));
  }

  function setAxes(rows, cols) {
    if (rows === cols) return;
    state.rows = rows;
    state.cols = cols;
    rowsSel.value = rows;
    colsSel.value = cols;
    buildSliders();
    load(true);
  }

  rowsSel.value = state.rows;
  colsSel.value = state.cols;
  rowsSel.addEventListener("change", () => setAxes(Number(rowsSel.value), Number(colsSel.value)));
  colsSel.addEventListener("change", () => setAxes(Number(rowsSel.value), Number(colsSel.value)));
  const planes = ndim === 3 ? el("span", { class: "planes" },
    [["XY", 1, 2], ["XZ", 0, 2], ["YZ", 0, 1]].map(([label, r, c]) =>
      el("button", { type: "button", id: `plane-${label}`, onclick: () => setAxes(r, c) }, label))) : null;
  const applyContrast = () => {
    state.lo = Number(loInput.value);
    state.hi = Number(hiInput.value);
    main.repaint(display());
    if (state.other) second.repaint(display());
    redraw();
  };
  loInput.addEventListener("change", applyContrast);
  hiInput.addEventListener("change", applyContrast);
  labelBox.addEventListener("change", () => { state.label = labelBox.checked; applyContrast(); });
  const autoButton = el("button", { type: "button", id: "contrast-auto", onclick: () => {
    [state.lo, state.hi] = planeRange(main.plane.values);
    loInput.value = state.lo; hiInput.value = state.hi; applyContrast();
  } }, "auto");

  compareSel.addEventListener("change", async () => {
    state.other = compareSel.value || null;
    state.diff = null;
    if (state.other) {
      const diff = await getJSON(`/api/repos/${enc(repoName)}/diff?a=${enc(state.other)}` +
                                 `&b=${enc(info.Base.DataUUID)}&array=${enc(name)}`);
      const entry = diff.arrays.find((a) => a.name === name);
      state.diff = { chunks: info.storage_chunks, truncated: diff.truncated,
                     changed: entry ? [...entry.added, ...entry.removed, ...entry.modified] : [] };
    }
    otherWrap.hidden = !state.other;
    document.getElementById("other-caption").textContent = state.other ? `version ${state.other.slice(0, 8)}` : "";
    await load(false);
  });

  // Zoom about the pointer with the wheel, pan by dragging; both views move together.
  for (const canvas of [main.canvas, second.canvas]) {
    canvas.addEventListener("wheel", (event) => {
      event.preventDefault();
      const factor = event.deltaY < 0 ? 1.25 : 0.8;
      const x = event.offsetX * (canvas.width / canvas.clientWidth);
      const y = event.offsetY * (canvas.height / canvas.clientHeight);
      view.panX = x - (x - view.panX) * factor;
      view.panY = y - (y - view.panY) * factor;
      view.scale *= factor;
      redraw();
      fetchDetail();
    }, { passive: false });
    let drag = null;
    canvas.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, panX: view.panX, panY: view.panY };
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointerup", () => { drag = null; fetchDetail(); });
    canvas.addEventListener("pointermove", (event) => {
      const k = canvas.width / canvas.clientWidth;
      if (drag) {
        view.panX = drag.panX + (event.clientX - drag.x) * k;
        view.panY = drag.panY + (event.clientY - drag.y) * k;
        redraw();
      }
      const which = canvas === main.canvas ? main : second;
      if (!which.plane) return;
      const col = Math.floor((event.offsetX * k - view.panX) / view.scale);
      const row = Math.floor((event.offsetY * k - view.panY) / view.scale);
      const p = which.plane;
      const inside = row >= 0 && col >= 0 && row < p.height * p.step[0] && col < p.width * p.step[1];
      const hit = inside ? which.valueAt(row, col) : null;
      if (!hit) { cursor.textContent = "outside the array"; return; }
      const coords = [...state.index];
      coords[state.rows] = hit.r;
      coords[state.cols] = hit.c;
      cursor.textContent = `${names.map((n, a) => `${n}=${coords[a]}`).join(" ")}  value=${hit.value}`;
    });
  }
  // A merge version: the conflicts its parents have (resolved by the merge, or none).
  const conflictsButton = here && here.parents.length > 1 ? el("button", {
    type: "button", id: "show-conflicts", onclick: async () => {
      const found = await getJSON(`/api/repos/${enc(repoName)}/conflicts?versions=` +
        `${here.parents.join(",")}&array=${enc(name)}`);
      state.conflicts = found.conflicts.filter((c) => c.kind === "voxels");
      const other = found.conflicts.filter((c) => c.kind !== "voxels");
      conflictList.replaceChildren(
        ...(found.conflicts.length ? [] : [el("li", {}, "the merge had no conflicts in this array")]),
        ...other.map((c) => el("li", { class: "merge-conflict" }, c.message)),
        ...state.conflicts.map((c) => el("li", { class: "merge-conflict" },
          `chunk (${c.chunk.join(", ")}): ${c.voxels} voxels in ${c.box.map(([a, b]) => `${a}:${b}`).join(", ")}`)));
      redraw();
    } }, "show merge conflicts") : null;
  const resetButton = el("button", { type: "button", id: "zoom-reset", onclick: () => {
    fit(); main.setDetail(null); second.setDetail(null); redraw();
  } }, "fit");

  const source = `${location.origin}/zarr/${enc(repoName)}/${uuid}/${enc(name)}/`;
  const extents = info.extents.map(([a, b]) => `${a}:${b}`).join(", ");
  app.replaceChildren(
    el("h1", {}, name),
    el("p", { class: "badges" },
      el("span", { class: "badge" }, info.dtype),
      el("span", { class: "badge" }, info.unbounded ? "unbounded" : info.shape.join(" × ")),
      el("span", { class: "badge" }, `chunks ${info.chunks.join(" × ")}`),
      el("span", { class: "badge" }, `extents ${extents}`),
      info.islabel3D ? el("span", { class: "badge label" }, "labels") : null,
      el("span", { class: "muted" }, ` axes ${names.join(", ")} (${names[ndim - 1]} fastest)`)),
    el("div", { class: "controls" },
      planes,
      el("label", {}, "rows ", rowsSel), el("label", {}, "columns ", colsSel),
      sliders,
      el("label", {}, "contrast ", loInput, "–", hiInput), autoButton,
      el("label", {}, labelBox, " label colours"),
      resetButton,
      el("label", {}, "compare with version ", compareSel),
      conflictsButton,
      neuroglancerLink(repoName, uuid, { array: name, compareOf: () => compareSel.value || null })),
    el("p", { class: "muted mono" }, "zarr v3: ", el("code", { id: "zarr-url" }, source)),
    el("div", { class: "views" },
      el("div", { class: "view", id: "view-main" },
         el("div", { class: "caption" }, `version ${uuid.slice(0, 8)}`), main.canvas),
      otherWrap),
    cursor,
    el("p", { id: "changed-count" }),
    changedList,
    el("p", { id: "conflict-count" }),
    conflictList,
    main.data, second.data);
  buildSliders();
  await load(true);
}
