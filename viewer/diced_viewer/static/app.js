// The viewer's pages, routed by the URL hash:
//   #/                                 repos
//   #/repo/NAME[/VERSION]              version graph and one version (default: master's leaf;
//                                      VERSION: a UUID, a prefix, :branch or tag:NAME)
//   #/repo/NAME/UUID/array/ARRAY       slice view of one array
import { ApiError, el, enc, getJSON, postJSON } from "./api.js";
import { drawDag } from "./dag.js";
import { arrayPage } from "./arrayview.js";
import { neuroglancerControls } from "./neuroglancer.js";

const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");

function setCrumbs(...parts) {
  crumbs.replaceChildren(...parts.flatMap((part, i) => [
    i ? " / " : "",
    part.href ? el("a", { href: part.href }, part.text) : el("span", {}, part.text),
  ]));
}

function fmtTime(iso) {
  return iso ? iso.slice(0, 19).replace("T", " ") : "";
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function snippet(text) {
  const code = el("code", {}, text);
  const button = el("button", { class: "copy", type: "button", onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = "selected: press Ctrl-C";
    }
  } }, "copy");
  return el("div", { class: "snippet" }, el("pre", {}, code), button);
}

async function homePage() {
  setCrumbs({ text: "repos" });
  const repos = await getJSON("/api/repos");
  const location = document.body.dataset.location || "LOCATION";
  const rows = repos.map((r) => el("tr", { class: "repo-row" },
    el("td", {}, el("a", { href: `#/repo/${enc(r.name)}` }, r.name)),
    el("td", {}, r.description),
    el("td", {}, fmtTime(r.created)),
    el("td", {}, fmtTime(r.updated)),
    el("td", { class: "num" }, String(r.node_count)),
    el("td", {}, snippet(`from diced import DicedStore\nstore = DicedStore(${JSON.stringify(location)})\nrepo = store.open_repo(${JSON.stringify(r.name)})`))));
  app.replaceChildren(
    el("h1", {}, "Repos"),
    repos.length ? el("table", { id: "repos" },
      el("thead", {}, el("tr", {}, ...["name", "description", "created", "updated", "versions",
                                       "open in Python"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows))
      : el("p", {}, "This store has no repos yet."));
}

function writeForms(node, refresh) {
  if (!document.body.dataset.writable) return null;
  const status = el("span", { class: "status" });
  const fail = (error) => { status.textContent = error.message; status.className = "status err"; };
  if (!node.locked) {
    const message = el("input", { id: "lock-message", placeholder: "commit message", required: true });
    return el("form", { id: "lock-form", class: "write", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await postJSON(`/api/node/${node.uuid}/lock`, { message: message.value });
        refresh(node.uuid);
      } catch (error) { fail(error); }
    } }, message, el("button", { type: "submit", id: "lock-button" }, "Lock this version"), status);
  }
  const note = el("input", { id: "branch-note", placeholder: "note for the new version", required: true });
  const name = el("input", { id: "branch-name", placeholder: "new branch name (optional)" });
  return el("form", { id: "branch-form", class: "write", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const made = await postJSON(`/api/node/${node.uuid}/branch`,
                                  { message: note.value, name: name.value || null });
      refresh(made.uuid);
    } catch (error) { fail(error); }
  } }, note, name, el("button", { type: "submit", id: "branch-button" }, "Branch from here"), status);
}

function versionPanel(repoName, node, tags, otherUuids = []) {
  const link = (uuid) => el("a", { href: `#/repo/${enc(repoName)}/${uuid}` }, el("code", {}, uuid.slice(0, 8)));
  const merge = node.parents.length > 1
    ? el("p", { id: "merge-parents" }, el("span", { class: "badge merge" }, "merge"), " of ",
         node.parents.flatMap((u, i) => [i ? (i === node.parents.length - 1 ? " and " : ", ") : "", link(u)]),
         el("span", { class: "muted" }, " (the first is the branch it continues; open an array to see the merge's conflicts)"))
    : null;
  const arrays = node.arrays.map((a) => el("tr", { class: "array-row" },
    el("td", {}, el("a", { href: `#/repo/${enc(repoName)}/${node.uuid}/array/${enc(a.name)}` }, a.name)),
    el("td", {}, a.dtype),
    el("td", {}, a.unbounded ? `unbounded; extents ${a.extents.map((e) => `${e[0]}:${e[1]}`).join(", ")}`
                             : a.shape.join(" × ")),
    el("td", {}, a.chunks.join(" × ")),
    el("td", {}, a.islabel3D ? el("span", { class: "badge label" }, "labels") : ""),
    el("td", { class: "num" }, `${a.stored_chunks} chunks, ${fmtBytes(a.stored_bytes)} stored (${fmtBytes(a.unique_bytes)} new in this version)`)));
  const files = node.files.map((f) => el("li", {},
    el("a", { href: `/api/node/${node.uuid}/.files/key/${enc(f)}`, download: f }, f)));
  const log = node.log.map((entry) => el("li", {},
    el("a", { href: `#/repo/${enc(repoName)}/${entry.uuid}` }, el("code", {}, entry.uuid.slice(0, 8))),
    " ", entry.message));
  const readme = el("div", { class: "readme" });
  if (node.readme_html) readme.innerHTML = node.readme_html; // rendered server-side, raw HTML off
  return el("section", { id: "version", "data-uuid": node.uuid },
    el("h2", {}, "Version ", el("code", {}, node.uuid), " ",
       el("span", { class: `badge ${node.locked ? "locked" : "open"}` }, node.locked ? "locked" : "open"),
       " ", el("span", { class: "badge" }, node.branch),
       tags.filter((t) => t.uuid === node.uuid).map((t) => el("span", {
         class: "badge tag", "data-tag": t.name, title: t.message || `tag ${t.name}` }, `tag ${t.name}`))),
    el("p", { class: "note" }, node.note),
    merge,
    snippet(`repo = store.open_repo(${JSON.stringify(repoName)})\nrepo.change_version(${JSON.stringify(node.uuid)})`),
    el("h3", {}, "Arrays"),
    neuroglancerControls(repoName, node.uuid, otherUuids),
    node.arrays.length ? el("table", { id: "arrays" },
      el("thead", {}, el("tr", {}, ...["name", "dtype", "shape", "chunks", "", "stored"].map((h) => el("th", {}, h)))),
      el("tbody", {}, arrays)) : el("p", {}, "No arrays."),
    el("h3", {}, "Files"),
    files.length ? el("ul", { id: "files" }, files) : el("p", {}, "No files."),
    node.readme_html ? [el("h3", {}, "README.md"), readme] : null,
    el("h3", {}, "Log"),
    el("ol", { id: "log" }, log));
}

async function repoPage(name, uuid) {
  const repo = await getJSON(`/api/repos/${enc(name)}`);
  // A tag, a branch or a prefix in the address resolves to the node it names.
  const node = await getJSON(`/api/node/${enc(uuid || repo.master_leaf)}`);
  const selected = node.uuid;
  setCrumbs({ text: "repos", href: "#/" }, { text: name, href: `#/repo/${enc(name)}` },
            { text: uuid && !/^[0-9a-f]+$/i.test(uuid) ? uuid : selected.slice(0, 8) });
  const go = (target) => { location.hash = `#/repo/${enc(name)}/${target}`; };
  const refresh = (target) => {
    if (location.hash === `#/repo/${enc(name)}/${target}`) route(); else go(target);
  };
  app.replaceChildren(
    el("h1", {}, name),
    el("p", {}, repo.description, " ",
       el("span", { class: "muted" }, `created ${fmtTime(repo.created)}, ${repo.node_count} versions`)),
    el("div", { class: "legend" }, el("span", { class: "dot locked" }), "locked ",
       el("span", { class: "dot open" }), "open ", el("span", { class: "dot leaf" }), "newest of its branch ",
       el("span", { class: "dot merge" }), "merge"),
    el("div", { class: "dag-wrap" }, drawDag(repo.nodes, selected, go, repo.tags)),
    writeForms(node, refresh) ?? "",
    versionPanel(name, node, repo.tags, repo.nodes.map((n) => n.uuid).filter((u) => u !== node.uuid)));
}

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "repo" && parts[3] === "array") await arrayPage(app, setCrumbs, parts[1], parts[2], parts[4]);
    else if (parts[0] === "repo" && parts[1]) await repoPage(parts[1], parts[2]);
    else await homePage();
  } catch (error) {
    app.replaceChildren(el("p", { class: "err", id: "error" },
      error instanceof ApiError ? error.message : `error: ${error}`));
  }
  document.body.dataset.ready = location.hash || "#/";
}

async function start() {
  const info = await getJSON("/api/server");
  document.body.dataset.location = info.location;
  if (info.writable) document.body.dataset.writable = "1";
  if (info.neuroglancer) document.body.dataset.neuroglancer = "1";
  document.getElementById("mode").textContent = info.writable ? "read-write" : "read-only";
  window.addEventListener("hashchange", () => { delete document.body.dataset.ready; route(); });
  await route();
}

start();
