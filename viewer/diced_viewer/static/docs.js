// A readable, offline rendering of /openapi.json (no external Swagger UI).
import { el, getJSON } from "./api.js";

const spec = await getJSON("/openapi.json");
const root = document.getElementById("docs");
root.append(el("h1", {}, spec.info.title), el("p", {}, spec.info.description));
for (const [path, operations] of Object.entries(spec.paths)) {
  for (const [method, op] of Object.entries(operations)) {
    const params = (op.parameters || []).map((p) => el("tr", {},
      el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
      el("td", {}, p.schema.type || ""), el("td", {}, p.description || "")));
    const ok = Object.entries(op.responses).find(([code]) => code < "400");
    root.append(el("section", { class: "operation" },
      el("h3", {}, el("code", {}, `${method.toUpperCase()} ${path}`)),
      el("p", {}, op.summary),
      params.length ? el("table", {}, el("tbody", {}, params)) : null,
      ok ? el("p", { class: "muted" }, `${ok[0]}: ${Object.keys(ok[1].content || {}).join(", ") || "no content"}; errors are JSON {error, status}`) : null));
  }
}
