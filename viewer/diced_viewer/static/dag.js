// The version DAG as SVG: one lane per branch, one row per generation, parents above.

const SVG = "http://www.w3.org/2000/svg";
const ROW = 56;
const LANE = 150;
const PAD = 30;

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

// Lay nodes out: depth = longest path from a root; lane = branch, by first appearance.
export function layout(nodes) {
  const byId = new Map(nodes.map((n) => [n.uuid, n]));
  const depth = new Map();
  const lanes = new Map();
  for (const node of nodes) { // oldest first, so parents come before children
    const parents = node.parents.filter((p) => depth.has(p));
    depth.set(node.uuid, parents.length ? Math.max(...parents.map((p) => depth.get(p))) + 1 : 0);
    if (!lanes.has(node.branch)) lanes.set(node.branch, lanes.size);
  }
  return nodes.map((n) => ({
    node: n, x: PAD + lanes.get(n.branch) * LANE, y: PAD + depth.get(n.uuid) * ROW,
    parents: n.parents.filter((p) => byId.has(p)),
  }));
}

// Draw the DAG; `onSelect(uuid)` runs when a node is clicked. A merge node (several
// parents) gets a ring and an edge from each parent; `tags` ({name, uuid}) label nodes.
export function drawDag(nodes, selected, onSelect, tags = []) {
  const tagsOf = new Map();
  for (const tag of tags) tagsOf.set(tag.uuid, [...(tagsOf.get(tag.uuid) || []), tag.name]);
  const placed = layout(nodes);
  const at = new Map(placed.map((p) => [p.node.uuid, p]));
  const width = Math.max(...placed.map((p) => p.x)) + LANE;
  const height = Math.max(...placed.map((p) => p.y)) + PAD;
  const root = svg("svg", { id: "dag", width, height, viewBox: `0 0 ${width} ${height}`,
                            role: "img", "aria-label": "version graph" });
  for (const p of placed) {
    for (const parent of p.parents) {
      const from = at.get(parent);
      const d = `M${from.x},${from.y} C${from.x},${(from.y + p.y) / 2} ${p.x},${(from.y + p.y) / 2} ${p.x},${p.y}`;
      root.append(svg("path", { class: "edge", d, "data-from": parent, "data-to": p.node.uuid }));
    }
  }
  for (const p of placed) {
    const n = p.node;
    const classes = ["node", n.locked ? "locked" : "open"];
    if (n.is_branch_leaf) classes.push("leaf");
    if (n.parents.length > 1) classes.push("merge");
    if (n.uuid === selected) classes.push("selected");
    const state = n.locked ? `locked: ${n.lock_message}` : "open";
    const title = svg("title", {});
    const merged = n.parents.length > 1 ? `\nmerge of ${n.parents.map((u) => u.slice(0, 8)).join(", ")}` : "";
    const named = tagsOf.get(n.uuid) || [];
    title.textContent = `${n.uuid}\nbranch ${n.branch}\nnote: ${n.note}\n${state}${merged}` +
      named.map((t) => `\ntag ${t}`).join("");
    const group = svg("g", { class: classes.join(" "), "data-uuid": n.uuid, tabindex: 0,
                             transform: `translate(${p.x},${p.y})` }, title);
    if (merged) group.append(svg("circle", { class: "merge-ring", r: 15 }));
    group.append(svg("circle", { r: n.is_branch_leaf ? 11 : 9 }));
    const label = svg("text", { x: 18, y: 4 });
    label.textContent = n.uuid.slice(0, 8) + (n.is_branch_leaf ? `  ${n.branch}` : "");
    group.append(label);
    named.forEach((name, i) => {
      const badge = svg("text", { class: "tag-badge", x: 18, y: 18 + 13 * i, "data-tag": name });
      badge.textContent = `tag ${name}`;
      group.append(badge);
    });
    group.addEventListener("click", () => onSelect(n.uuid));
    group.addEventListener("keydown", (e) => { if (e.key === "Enter") onSelect(n.uuid); });
    root.append(group);
  }
  return root;
}
