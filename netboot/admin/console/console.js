// The netboot admin console: machines, their boot journeys, assignments and image sets, live.
//
// A plain ES module (no build step, no framework). The page is server-rendered first; this module
// then fetches /api/images and /api/machines, renders rows with controls, and keeps them current
// from the server-sent events of /api/events (`hello`, `machine`, `assignment`, `images`): rows are
// updated in place, never by reloading the page and never by polling. EventSource reconnects by
// itself (resuming with Last-Event-ID); every `hello` (the first event of each connection) fetches
// the full state again, so nothing missed while disconnected stays stale.
//
// Element contract the browser tests use: machine rows `tr.machine[data-mac]`, their cells
// `.assignment`, `select.assign`, `button.assign-apply`, `.assign-error`; image rows
// `tr.image[data-image-id]`.

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

// Set once per page load: a test reads it to prove that updates came without a reload.
window.__loadedAt = Date.now();

const state = {
  machines: new Map(), // mac -> Machine (API shape)
  images: [], // [Image]
  expanded: new Set(), // macs whose journey timeline is open
};

// ---- small helpers -------------------------------------------------------------------------

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const whole = Math.max(0, Math.round(seconds));
  const minutes = Math.floor(whole / 60);
  const hours = Math.floor(minutes / 60);
  if (hours > 0) return `${hours}h ${minutes % 60}m`;
  if (minutes > 0) return `${minutes}m ${whole % 60}s`;
  return `${whole}s`;
}

function byteCount(count) {
  if (count === null || count === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${count} B` : `${value.toFixed(1)} ${units[unit]}`;
}

// Image IDs as `netboot images list` and the logs write them: 0x01000002.
function hexId(id) {
  return `0x${Number(id).toString(16).padStart(8, "0")}`;
}

function imageLabel(image) {
  const id = image.id === null ? "no ID" : hexId(image.id);
  return `${image.name ?? image.path} (${id})`;
}

function showBanner(text, link) {
  const banner = document.getElementById("banner");
  banner.replaceChildren(text);
  if (link) banner.append(" ", element("a", { href: link.href, text: link.text }));
  banner.hidden = false;
}

// Every API call goes through here: the session cookie rides along (same origin), state changes
// carry the CSRF token, and an error body's `error` text comes back for people to read.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    showBanner("Your session has ended.", { href: "/login", text: "Log in again" });
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  const error = response.ok ? null : (data?.error ?? `${response.status} ${response.statusText}`);
  return { ok: response.ok, status: response.status, data, error };
}

// ---- which images a machine could boot --------------------------------------------------------

// The choices offered in a machine's select. The server decides for real (422 otherwise); this
// only keeps obviously wrong choices out of the list: a Mac gets sets with a Mac booter for its
// architecture that do not refuse its model, a PC gets sets with a kernel for its firmware family.
export function bootableImages(machine, images) {
  return images.filter((image) => {
    if (image.id === null || !image.servable) return false;
    if (machine.kind === "mac") {
      const architectures = image.architectures ?? [];
      if (architectures.length === 0) return false;
      if (machine.architecture && !architectures.includes(machine.architecture)) return false;
      const model = machine.model;
      if (model && (image.disabled_system_identifiers ?? []).includes(model)) return false;
      const enabled = image.enabled_system_identifiers ?? [];
      if (model && enabled.length > 0 && !enabled.includes(model)) return false;
      return true;
    }
    if (machine.kind === "pc") {
      const families = image.pc_architectures ?? [];
      if (families.length === 0) return false;
      const family = [machine.architecture, machine.firmware].find((name) =>
        families.includes(name),
      );
      return family !== undefined || (!machine.architecture && !machine.firmware);
    }
    return true;
  });
}

// ---- machines -------------------------------------------------------------------------------

const MACHINE_CELLS = [
  ["mac", "MAC"],
  ["kind", "Kind"],
  ["architecture", "Architecture"],
  ["address", "Address"],
  ["lease", "Lease"],
  ["server", "Server"],
  ["progress", "Progress"],
  ["assignment", "Assignment"],
  ["assign", "Assign"],
  ["journey", "Journeys"],
];

function kindText(machine) {
  const parts = [];
  if (machine.kind) parts.push(machine.kind === "mac" ? "Mac" : "PC");
  if (machine.model) parts.push(machine.model);
  if (machine.firmware) parts.push(machine.firmware);
  return parts.join(" · ");
}

function leaseText(lease) {
  if (!lease) return "";
  return `${lease.address} ${lease.state}, ${duration(lease.expires_in)} left`;
}

function assignmentNode(assignment) {
  if (!assignment) return element("span", { className: "muted", text: "none (catalog default)" });
  const target =
    assignment.image_id === null
      ? "none/menu"
      : `${assignment.image_name ?? "image"} (${hexId(assignment.image_id)})`;
  const source = element("span", {
    className: `source source-${assignment.source}`,
    "data-source": assignment.source,
    text: assignment.source,
  });
  const who = assignment.changed_by
    ? element("span", {
        className: "muted changed",
        text: ` by ${assignment.changed_by}${assignment.changed_at ? ` at ${clock(assignment.changed_at)}` : ""}`,
      })
    : null;
  return element("span", {}, element("span", { className: "target", text: target }), " ", source, who);
}

function assignValue(assignment) {
  if (!assignment) return "";
  return assignment.image_id === null ? "none" : String(assignment.image_id);
}

function fillAssignSelect(select, machine) {
  if (document.activeElement === select) return; // never yank a list someone is choosing from
  const choices = bootableImages(machine, state.images);
  const current = assignValue(machine.assignment);
  const wanted = [["", "choose…"]];
  for (const image of choices) wanted.push([String(image.id), imageLabel(image)]);
  if (current !== "" && current !== "none" && !choices.some((i) => String(i.id) === current)) {
    wanted.push([current, `${hexId(current)} (assigned)`]); // keep showing what is in force
  }
  wanted.push(["none", "none/menu"], ["clear", "clear assignment"]);
  const signature = JSON.stringify(wanted);
  if (select.dataset.signature !== signature) {
    select.replaceChildren(
      ...wanted.map(([value, label]) => element("option", { value, text: label })),
    );
    select.dataset.signature = signature;
    select.value = current;
  } else if (select.dataset.assigned !== current) {
    select.value = current;
  }
  select.dataset.assigned = current;
}

async function applyAssignment(mac, row) {
  const select = row.querySelector("select.assign");
  const button = row.querySelector("button.assign-apply");
  const errorNode = row.querySelector(".assign-error");
  const choice = select.value;
  if (choice === "") {
    errorNode.textContent = "Choose an image first.";
    return;
  }
  // Colons stay as they are (legal in a path segment; the API's paths show them so).
  const path = `/api/assignments/${mac.split(":").map(encodeURIComponent).join(":")}`;
  button.disabled = true;
  errorNode.textContent = "";
  try {
    const result =
      choice === "clear"
        ? await api("DELETE", path)
        : await api("PUT", path, { image_id: choice === "none" ? null : Number(choice) });
    if (!result.ok) {
      errorNode.textContent = result.error;
      return;
    }
    // The `assignment` event updates the cell too; one read makes the page right even if the
    // event stream is down at this moment.
    const listed = await api("GET", "/api/assignments");
    if (listed.ok) {
      const found = listed.data.assignments.find((a) => a.mac === mac) ?? null;
      applyAssignmentEvent({ mac, assignment: found });
    }
  } finally {
    button.disabled = false;
  }
}

function buildMachineGroup(mac) {
  const row = element("tr", { className: "machine", "data-mac": mac });
  for (const [name, label] of MACHINE_CELLS) {
    row.append(element("td", { className: name, "data-label": label }));
  }
  const select = element("select", { className: "assign", "aria-label": `Assign ${mac}` });
  const apply = element("button", { type: "button", className: "assign-apply", text: "Apply" });
  const errorNode = element("span", { className: "assign-error", role: "alert" });
  apply.addEventListener("click", () => applyAssignment(mac, row));
  row.querySelector("td.assign").append(
    element("div", { className: "assign-controls" }, select, " ", apply, errorNode),
  );
  const toggle = element("button", {
    type: "button",
    className: "journey-toggle",
    "aria-expanded": "false",
  });
  row.querySelector("td.journey").append(toggle);
  const timelineRow = element(
    "tr",
    { className: "timeline", "data-timeline-for": mac, hidden: true },
    element("td", { colspan: MACHINE_CELLS.length }),
  );
  toggle.addEventListener("click", () => {
    if (state.expanded.has(mac)) state.expanded.delete(mac);
    else state.expanded.add(mac);
    renderMachine(state.machines.get(mac));
  });
  return element(
    "tbody",
    { className: "machine-group", "data-machine-group": mac },
    row,
    timelineRow,
  );
}

function machineGroup(mac) {
  return document.querySelector(`tbody.machine-group[data-machine-group="${CSS.escape(mac)}"]`);
}

function renderTimeline(cell, machine) {
  const journeys = machine.journeys ?? [];
  if (journeys.length === 0) {
    cell.replaceChildren(element("p", { className: "muted", text: "No journey recorded." }));
    return;
  }
  const blocks = journeys.map((journey, index) => {
    const title = `${index === 0 ? "Latest journey" : "Journey"} from ${clock(journey.started)}${
      journey.ended === null ? " (in progress)" : ` to ${clock(journey.ended)}`
    }`;
    const steps = element("ol", { className: "steps" });
    for (const step of journey.steps ?? []) {
      const offset = (step.at - journey.started).toFixed(2);
      steps.append(
        element(
          "li",
          { className: "step", "data-stage": step.stage },
          element("time", { text: `${clock(step.at)} (+${offset} s)` }),
          " ",
          element("b", { text: step.stage }),
          step.detail ? ` ${step.detail}` : "",
          step.bytes !== null && step.bytes !== undefined
            ? element("span", { className: "muted", text: ` ${byteCount(step.bytes)}` })
            : null,
        ),
      );
    }
    const transfers = element("ul", { className: "transfers" });
    for (const transfer of journey.transfers ?? []) {
      const bar = element("progress", { max: transfer.size ?? null, "aria-label": transfer.name });
      if (transfer.size) bar.value = transfer.bytes;
      const amount =
        transfer.size === null
          ? byteCount(transfer.bytes)
          : `${byteCount(transfer.bytes)} of ${byteCount(transfer.size)}`;
      transfers.append(
        element(
          "li",
          { className: "transfer", "data-done": transfer.done ? "true" : "false" },
          element("span", { className: "protocol", text: transfer.protocol }),
          " ",
          element("span", { className: "name", text: transfer.name }),
          " ",
          bar,
          " ",
          element("span", { className: "amount", text: amount }),
          transfer.done ? element("span", { className: "done", text: " done" }) : null,
        ),
      );
    }
    return element(
      "section",
      { className: "journey" },
      element("h3", { text: title }),
      steps,
      transfers.childElementCount > 0 ? transfers : null,
    );
  });
  cell.replaceChildren(...blocks);
}

function renderMachine(machine) {
  let group = machineGroup(machine.mac);
  if (!group || !group.querySelector("select.assign")) {
    const fresh = buildMachineGroup(machine.mac);
    if (group) group.replaceWith(fresh);
    else document.querySelector("#machines thead").after(fresh); // newest first
    group = fresh;
  }
  const row = group.querySelector("tr.machine");
  const text = (name, value) => {
    row.querySelector(`td.${name}`).textContent = value ?? "";
  };
  text("mac", machine.mac);
  text("kind", kindText(machine));
  text("architecture", machine.architecture);
  text("address", machine.address);
  text("lease", leaseText(machine.lease));
  text("server", machine.server);
  text("progress", machine.image ? `${machine.progress} (${machine.image})` : machine.progress);
  row.querySelector("td.assignment").replaceChildren(assignmentNode(machine.assignment));
  fillAssignSelect(row.querySelector("select.assign"), machine);
  const open = state.expanded.has(machine.mac);
  const toggle = row.querySelector("button.journey-toggle");
  const count = (machine.journeys ?? []).length;
  toggle.textContent = `${open ? "Hide" : "Show"} ${count} ${count === 1 ? "journey" : "journeys"}`;
  toggle.setAttribute("aria-expanded", String(open));
  const timelineRow = group.querySelector("tr.timeline");
  timelineRow.hidden = !open;
  if (open) renderTimeline(timelineRow.firstElementChild, machine);
  document.getElementById("machines-empty").hidden = state.machines.size > 0;
}

function applyMachine(machine) {
  state.machines.set(machine.mac, machine);
  renderMachine(machine);
}

function applyAssignmentEvent({ mac, assignment }) {
  const machine = state.machines.get(mac);
  if (!machine) return; // the next `machine` event or snapshot brings it with its assignment
  const updated = { ...machine, assignment };
  state.machines.set(mac, updated);
  renderMachine(updated);
}

function renderAllMachines() {
  // Server-rendered groups without controls are replaced; groups of machines the server no longer
  // lists are dropped.
  for (const group of document.querySelectorAll("#machines tbody.machine-group")) {
    if (!state.machines.has(group.dataset.machineGroup)) group.remove();
  }
  const newestLast = [...state.machines.values()].sort((a, b) => a.last_seen - b.last_seen);
  for (const machine of newestLast) renderMachine(machine);
}

// ---- images ---------------------------------------------------------------------------------

async function patchImage(row, image, changes) {
  const errorNode = row.querySelector(".image-error");
  errorNode.textContent = "";
  const result = await api("PATCH", `/api/images/${image.id}`, changes);
  if (!result.ok) {
    errorNode.textContent = result.error;
    renderImageRow(row, image); // put the checkboxes back to what is in force
    return;
  }
  const index = state.images.findIndex((i) => i.id === image.id);
  if (index >= 0) state.images[index] = result.data;
  renderImageRow(row, result.data);
  for (const machine of state.machines.values()) renderMachine(machine);
}

function problemList(image) {
  const list = element("ul", { className: "problems" });
  for (const text of image.errors ?? []) {
    list.append(element("li", { className: "problem-error", text: `error: ${text}` }));
  }
  for (const text of image.warnings ?? []) {
    list.append(element("li", { className: "problem-warning", text: `warning: ${text}` }));
  }
  if (list.childElementCount === 0) {
    list.append(element("li", { className: "problem-none", text: image.valid ? "valid" : "" }));
  }
  return list;
}

function buildImageRow(image) {
  const row = element("tr", { className: "image", "data-image-id": image.id ?? "" });
  const cells = [
    ["image-id", "ID"],
    ["image-name", "Name"],
    ["image-description", "Description"],
    ["image-architectures", "Architectures"],
    ["image-enabled", "Enabled"],
    ["image-default", "Default"],
    ["image-problems", "Problems"],
  ];
  for (const [name, label] of cells) row.append(element("td", { className: name, "data-label": label }));
  const editable = image.id !== null;
  const name = element("input", { type: "text", className: "name-input", "aria-label": "Name" });
  const description = element("textarea", {
    className: "description-input",
    rows: 2,
    "aria-label": "Description",
  });
  const save = element("button", { type: "button", className: "image-save", text: "Save" });
  const enabled = element("input", { type: "checkbox", className: "enabled-input", "aria-label": "Enabled" });
  const isDefault = element("input", { type: "checkbox", className: "default-input", "aria-label": "Default" });
  for (const control of [name, description, save, enabled, isDefault]) control.disabled = !editable;
  row.querySelector("td.image-name").append(name);
  row.querySelector("td.image-description").append(element("div", {}, description, " ", save));
  row.querySelector("td.image-enabled").append(enabled);
  row.querySelector("td.image-default").append(isDefault);
  row.querySelector("td.image-problems").append(
    element(
      "div",
      {},
      element("ul", { className: "problems" }),
      element("span", { className: "image-error", role: "alert" }),
    ),
  );
  const current = () => state.images.find((i) => String(i.id) === row.dataset.imageId);
  const markDirty = (event) => {
    event.target.dataset.dirty = "true";
  };
  name.addEventListener("input", markDirty);
  description.addEventListener("input", markDirty);
  save.addEventListener("click", () => {
    const image = current();
    const changes = {};
    if (name.value !== (image.name ?? "")) changes.name = name.value;
    if (description.value !== (image.description ?? "")) changes.description = description.value;
    delete name.dataset.dirty;
    delete description.dataset.dirty;
    if (Object.keys(changes).length > 0) patchImage(row, image, changes);
  });
  enabled.addEventListener("change", () => patchImage(row, current(), { is_enabled: enabled.checked }));
  isDefault.addEventListener("change", () =>
    patchImage(row, current(), { is_default: isDefault.checked }),
  );
  return row;
}

function renderImageRow(row, image) {
  row.querySelector("td.image-id").textContent = image.id === null ? "—" : hexId(image.id);
  const name = row.querySelector("input.name-input");
  const description = row.querySelector("textarea.description-input");
  // An edit someone is typing survives an `images` event.
  if (!name.dataset.dirty) name.value = image.name ?? "";
  if (!description.dataset.dirty) description.value = image.description ?? "";
  const architectures = [...(image.architectures ?? []), ...(image.pc_architectures ?? [])];
  row.querySelector("td.image-architectures").textContent = architectures.join(", ");
  row.querySelector("input.enabled-input").checked = Boolean(image.is_enabled);
  row.querySelector("input.default-input").checked = Boolean(image.is_default);
  row.querySelector("td.image-problems ul.problems").replaceWith(problemList(image));
  row.classList.toggle("invalid", !image.valid);
  row.classList.toggle("disabled", !image.is_enabled);
}

function renderImages() {
  const body = document.getElementById("images-body");
  const existing = new Map();
  for (const row of body.querySelectorAll("tr.image")) {
    if (row.querySelector("input.name-input")) existing.set(row.dataset.imageId, row);
  }
  const rows = state.images.map((image) => {
    const key = String(image.id ?? "");
    const row = (image.id !== null && existing.get(key)) || buildImageRow(image);
    renderImageRow(row, image);
    return row;
  });
  body.replaceChildren(...rows);
}

function applyImages(images) {
  state.images = images;
  renderImages();
  for (const machine of state.machines.values()) renderMachine(machine);
}

// ---- start ----------------------------------------------------------------------------------

async function loadSnapshot() {
  const [images, machines] = await Promise.all([
    api("GET", "/api/images"),
    api("GET", "/api/machines"),
  ]);
  if (images.ok) applyImages(images.data.images);
  if (machines.ok) {
    const listed = new Set(machines.data.machines.map((m) => m.mac));
    for (const mac of [...state.machines.keys()]) if (!listed.has(mac)) state.machines.delete(mac);
    for (const machine of machines.data.machines) {
      const known = state.machines.get(machine.mac);
      // An event may already have brought something newer than this snapshot.
      if (!known || known.last_seen <= machine.last_seen) state.machines.set(machine.mac, machine);
    }
    renderAllMachines();
  }
  document.body.dataset.loaded = "true";
}

function setLive(live, text) {
  const badge = document.getElementById("live");
  badge.dataset.state = live;
  badge.textContent = text;
}

function listen() {
  const events = new EventSource("/api/events");
  const parsed = (handler) => (event) => handler(JSON.parse(event.data));
  let connections = 0;
  events.addEventListener("hello", () => {
    setLive("live", "live");
    // The first connection's state comes from the load below; a reconnection may have missed
    // events the server no longer keeps, so it reads everything again.
    connections += 1;
    if (connections > 1) loadSnapshot();
  });
  events.addEventListener("machine", parsed((machine) => applyMachine(machine)));
  events.addEventListener("assignment", parsed(applyAssignmentEvent));
  events.addEventListener("images", parsed((data) => applyImages(data.images)));
  events.addEventListener("error", () => {
    setLive(events.readyState === EventSource.CLOSED ? "offline" : "reconnecting",
      events.readyState === EventSource.CLOSED ? "not live" : "reconnecting…");
  });
}

function wireLogout() {
  const form = document.querySelector("form.logout");
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    await api("POST", "/logout");
    window.location.assign("/login");
  });
}

wireLogout();
listen();
loadSnapshot();
