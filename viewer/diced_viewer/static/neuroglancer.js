// Links to the local neuroglancer (diced serve --neuroglancer): GET /neuroglancer/REPO/UUID
// answers with a redirect to a neuroglancer viewer of that version on 127.0.0.1.

import { el, enc } from "./api.js";

// The address of a neuroglancer view of version `uuid`, optionally centred on `array` and
// with the layers of version `compare` added.
export function neuroglancerUrl(repoName, uuid, { array = null, compare = null } = {}) {
  const query = new URLSearchParams();
  if (array) query.set("array", array);
  if (compare) query.set("compare", compare);
  const suffix = query.toString() ? `?${query}` : "";
  return `/neuroglancer/${enc(repoName)}/${enc(uuid)}${suffix}`;
}

// An "open in neuroglancer" link whose target follows `compareOf()` (a version UUID or
// null) at click time; a hint when the server runs without neuroglancer.
export function neuroglancerLink(repoName, uuid, { array = null, compareOf = () => null } = {}) {
  if (!document.body.dataset.neuroglancer) {
    return el("span", { class: "muted", id: "neuroglancer-hint" },
              "diced serve --neuroglancer adds a local neuroglancer");
  }
  const link = el("a", { href: neuroglancerUrl(repoName, uuid, { array }), target: "_blank",
                         rel: "noopener", id: "neuroglancer-link", class: "button" },
                  "open in neuroglancer");
  link.addEventListener("click", () => {
    link.href = neuroglancerUrl(repoName, uuid, { array, compare: compareOf() });
  });
  return link;
}

// The version page's controls: open this version, or compare it with another one.
export function neuroglancerControls(repoName, uuid, otherUuids) {
  if (!document.body.dataset.neuroglancer) return neuroglancerLink(repoName, uuid);
  const select = el("select", { id: "neuroglancer-compare" }, el("option", { value: "" }, "—"),
    otherUuids.map((u) => el("option", { value: u }, u.slice(0, 8))));
  return el("p", { class: "neuroglancer" },
    neuroglancerLink(repoName, uuid, { compareOf: () => select.value || null }),
    el("label", {}, " compare with version ", select));
}
