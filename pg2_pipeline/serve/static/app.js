// The pose-transfer page: person + target pose -> POST /api/generate -> condition | G1 | PG².
// Keypoints are [y, x] in the model's frame (state.size = [height, width]), -1 = missing, as in
// the pose files `pg2 generate --pose` reads.
"use strict";

const $ = (selector) => document.querySelector(selector);
// A standing person in a 128x64 frame: where a joint that was never placed is put back.
const STANDING = [[22, 32], [34, 32], [36, 22], [56, 19], [74, 18], [36, 42], [56, 45], [74, 46], [70, 26],
  [92, 26], [114, 26], [70, 38], [92, 38], [114, 38], [19, 29], [19, 35], [21, 26], [21, 38]];
const HIT_RADIUS = 12; // screen pixels around a joint that grab it

const state = {
  info: null,
  size: [128, 64],
  model: null, // the registry URI chosen in the switcher (null: the server's default)
  choices: [],
  person: null, // {kind: "id", id} | {kind: "file", file}
  pose: null, // {kind: "keypoints", keypoints} | {kind: "file", file}
  lastGood: null, // {person, pose} of the last answer: what an upload that failed falls back to
  lastPlaced: [], // where each joint was before it was removed
  background: null, // the condition image under the skeleton
  dragging: null,
  inFlight: false,
  pending: false,
  generated: 0, // answers shown so far (the browser test waits on it)
};
window.pg2Page = { state };

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("#error").hidden = true;
}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${url}: HTTP ${response.status}`);
  return body;
}

// ---------------------------------------------------------------- the model and its card

function showCard(card) {
  const box = $("#card");
  box.textContent = "";
  if (!card) return;
  const title = document.createElement("strong");
  const aliases = card.aliases.length ? ` (@${card.aliases.join(", @")})` : "";
  title.textContent = card.name ? `${card.name} v${card.version}${aliases}` : card.uri;
  box.append(title, ` — ${card.trained_on} `);
  for (const [key, value] of Object.entries(card.tags)) {
    if (["data", "dataset", "profile", "stage1.steps", "stage2.steps"].includes(key)) continue; // in the sentence
    const chip = document.createElement("code");
    chip.textContent = `${key}: ${value}`;
    box.append(chip);
  }
  const caveat = $("#caveat");
  caveat.textContent = card.caveat ? `Note: ${card.caveat}.` : "";
  caveat.hidden = !card.caveat;
}

async function loadModels() {
  const models = await getJSON("/api/models");
  state.choices = models.choices;
  const select = $("#model");
  select.textContent = "";
  for (const choice of models.choices) {
    const option = document.createElement("option");
    option.value = choice.uri;
    option.textContent = choice.label;
    select.append(option);
  }
  const current = models.choices.find((c) => c.uri === models.default);
  if (current) select.value = current.uri;
  state.model = current ? current.uri : null;
  showCard(current ? current.card : models.choices[0] && models.choices[0].card);
}

$("#model").addEventListener("change", (event) => {
  state.model = event.target.value;
  const choice = state.choices.find((c) => c.uri === state.model);
  if (choice) showCard(choice.card);
  requestGenerate();
});

// ---------------------------------------------------------------- generating

function poseJSON() {
  return JSON.stringify({ size: state.size, keypoints: state.pose.keypoints });
}

function requestGenerate() {
  if (!state.person || !state.pose) return;
  if (state.inFlight) {
    state.pending = true; // one request at a time; the latest state goes next
    return;
  }
  const limit = state.info ? state.info.max_upload_bytes : Infinity;
  for (const item of [state.person, state.pose]) {
    if (item.kind === "file" && item.file.size > limit) {
      showError(`${item.file.name} is larger than the ${limit / 2 ** 20} MB upload limit`);
      return;
    }
  }
  const sent = { person: state.person, pose: state.pose };
  const form = new FormData();
  if (sent.person.kind === "id") form.append("image_id", sent.person.id);
  else form.append("image", sent.person.file, sent.person.file.name);
  if (sent.pose.kind === "file") form.append("pose_image", sent.pose.file, sent.pose.file.name);
  else form.append("pose", poseJSON());
  if (state.model) form.append("model", state.model);
  state.inFlight = true;
  document.body.classList.add("busy");
  const started = performance.now();
  fetch("/api/generate", { method: "POST", body: form })
    .then(async (response) => {
      let body;
      try {
        body = await response.json();
      } catch {
        body = { error: `the server answered HTTP ${response.status}` };
      }
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      await show(body, sent, performance.now() - started);
    })
    .catch((error) => {
      showError(error.message);
      // a photo that cannot be used is dropped: the page goes on with the last good inputs
      if (state.lastGood && state.person === sent.person && sent.person.kind === "file") state.person = state.lastGood.person;
      if (state.lastGood && state.pose === sent.pose && sent.pose.kind === "file") state.pose = state.lastGood.pose;
    })
    .finally(() => {
      state.inFlight = false;
      document.body.classList.remove("busy");
      if (state.pending) {
        state.pending = false;
        requestGenerate();
      }
    });
}

async function dataURLToFile(url, name) {
  const blob = await (await fetch(url)).blob();
  return new File([blob], name, { type: blob.type });
}

async function show(body, sent, ms) {
  clearError();
  $("#out-condition").src = body.condition;
  $("#out-g1").src = body.g1;
  $("#out-pg2").src = body.pg2 || body.g1;
  $("#download-png").href = body.pg2 || body.g1;
  state.size = body.size;
  if (sent.pose === state.pose && sent.pose.kind === "file") {
    // the pose BlazePose found in the photo becomes editable
    state.pose = { kind: "keypoints", keypoints: body.keypoints_target };
  }
  if (sent.person === state.person && sent.person.kind === "file" && !sent.person.aligned) {
    // the crop is what the model saw: send it from now on (no second BlazePose run per change)
    const file = await dataURLToFile(body.condition, "condition.png");
    state.person = { kind: "file", file, aligned: true };
  }
  state.lastGood = { person: state.person, pose: state.pose };
  state.background = await loadImage(body.condition);
  showCard(body.card);
  syncJoints();
  drawEditor();
  const server = Math.round(body.seconds * 1000);
  $("#status").textContent = `${body.model} (v${body.version}) · ${Math.round(ms)} ms (model ${server} ms)`;
  state.generated += 1;
  document.body.dataset.generated = String(state.generated);
}

function loadImage(src) {
  return new Promise((resolve) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => resolve(null);
    image.src = src;
  });
}

// ---------------------------------------------------------------- galleries and uploads

function select(container, element) {
  for (const other of container.querySelectorAll(".selected")) other.classList.remove("selected");
  if (element) element.classList.add("selected");
}

function drawSkeleton(context, keypoints, sx, sy, radius, width) {
  const visible = (k) => keypoints[k][0] >= 0 && keypoints[k][1] >= 0;
  const at = (k) => [(keypoints[k][1] + 0.5) * sx, (keypoints[k][0] + 0.5) * sy];
  const colour = (k) => `rgb(${state.info.colours[k].join(",")})`;
  context.lineWidth = width;
  for (const [a, b] of state.info.bones) {
    if (!visible(a) || !visible(b)) continue;
    context.strokeStyle = colour(b);
    context.beginPath();
    context.moveTo(...at(a));
    context.lineTo(...at(b));
    context.stroke();
  }
  keypoints.forEach((_, k) => {
    if (!visible(k)) return;
    context.fillStyle = colour(k);
    context.beginPath();
    context.arc(...at(k), radius, 0, 2 * Math.PI);
    context.fill();
  });
}

function toModelFrame(pose) {
  const [h, w] = state.size;
  return pose.keypoints.map(([y, x]) => (y < 0 || x < 0 ? [-1, -1] : [(y * h) / pose.size[0], (x * w) / pose.size[1]]));
}

async function loadGallery() {
  const gallery = await getJSON("/api/gallery");
  const people = $("#people");
  for (const person of gallery.people) {
    const image = document.createElement("img");
    image.src = person.url;
    image.alt = image.title = `${person.image_id} (person ${person.person_id})`;
    image.dataset.imageId = person.image_id;
    image.addEventListener("click", () => {
      select(people, image);
      state.person = { kind: "id", id: person.image_id };
      requestGenerate();
    });
    people.append(image);
  }
  const poses = $("#poses");
  for (const pose of gallery.poses) {
    const canvas = document.createElement("canvas");
    canvas.width = 32;
    canvas.height = 64;
    canvas.title = `pose of ${pose.image_id}`;
    drawSkeleton(canvas.getContext("2d"), pose.keypoints, 32 / pose.size[1], 64 / pose.size[0], 1.5, 1.2);
    canvas.addEventListener("click", () => {
      select(poses, canvas);
      state.pose = { kind: "keypoints", keypoints: toModelFrame(pose) };
      syncJoints();
      drawEditor();
      requestGenerate();
    });
    poses.append(canvas);
  }
  if (gallery.note) $("#people").textContent = gallery.note;
  return gallery;
}

$("#person-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  event.target.value = ""; // the same file chosen again is a change too
  if (!file) return;
  select($("#people"), null);
  state.person = { kind: "file", file };
  requestGenerate();
});

$("#pose-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  select($("#poses"), null);
  state.pose = { kind: "file", file };
  requestGenerate();
});

$("#download-pose").addEventListener("click", () => {
  if (!state.pose || state.pose.kind !== "keypoints") return;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([poseJSON()], { type: "application/json" }));
  link.download = "pose.json";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
});

// ---------------------------------------------------------------- the skeleton editor

const editor = $("#editor");

function editorScale() {
  return [editor.width / state.size[1], editor.height / state.size[0]];
}

function drawEditor() {
  editor.height = Math.round((editor.width * state.size[0]) / state.size[1]);
  editor.style.height = `${editor.height}px`;
  const context = editor.getContext("2d");
  context.clearRect(0, 0, editor.width, editor.height);
  if (state.background) {
    context.globalAlpha = 0.45;
    context.drawImage(state.background, 0, 0, editor.width, editor.height);
    context.globalAlpha = 1;
  }
  if (state.pose && state.pose.kind === "keypoints") drawSkeleton(context, state.pose.keypoints, ...editorScale(), 6, 3);
}

function syncJoints() {
  const box = $("#joints");
  const keypoints = state.pose && state.pose.kind === "keypoints" ? state.pose.keypoints : null;
  box.querySelectorAll("input").forEach((input, k) => {
    input.checked = Boolean(keypoints) && keypoints[k][0] >= 0 && keypoints[k][1] >= 0;
    input.disabled = !keypoints;
  });
}

function buildJointList() {
  const box = $("#joints");
  state.info.joints.forEach((name, k) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.dataset.joint = String(k);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${state.info.colours[k].join(",")})`;
    label.append(input, swatch, name.replace("_", " "));
    input.addEventListener("change", () => setJoint(k, input.checked));
    box.append(label);
  });
}

function setJoint(k, present) {
  const keypoints = state.pose.keypoints;
  if (present) {
    const [h, w] = state.size;
    keypoints[k] = state.lastPlaced[k] || [(STANDING[k][0] * h) / 128, (STANDING[k][1] * w) / 64];
  } else {
    state.lastPlaced[k] = keypoints[k];
    keypoints[k] = [-1, -1];
  }
  syncJoints();
  drawEditor();
  requestGenerate();
}

function jointAt(event) {
  if (!state.pose || state.pose.kind !== "keypoints") return null;
  const rect = editor.getBoundingClientRect();
  const [sx, sy] = editorScale();
  const px = ((event.clientX - rect.left) * editor.width) / rect.width;
  const py = ((event.clientY - rect.top) * editor.height) / rect.height;
  let best = null;
  let bestDistance = HIT_RADIUS;
  state.pose.keypoints.forEach(([y, x], k) => {
    if (y < 0 || x < 0) return;
    const distance = Math.hypot((x + 0.5) * sx - px, (y + 0.5) * sy - py);
    if (distance <= bestDistance) [best, bestDistance] = [k, distance];
  });
  return best;
}

editor.addEventListener("pointerdown", (event) => {
  state.dragging = jointAt(event);
  if (state.dragging !== null) editor.setPointerCapture(event.pointerId);
});

editor.addEventListener("pointermove", (event) => {
  if (state.dragging === null) return;
  const rect = editor.getBoundingClientRect();
  const [h, w] = state.size;
  const x = (((event.clientX - rect.left) / rect.width) * w) - 0.5;
  const y = (((event.clientY - rect.top) / rect.height) * h) - 0.5;
  state.pose.keypoints[state.dragging] = [Math.min(Math.max(y, 0), h - 1), Math.min(Math.max(x, 0), w - 1)];
  drawEditor();
  requestGenerate(); // while dragging: the result follows, one request at a time
});

editor.addEventListener("pointerup", () => {
  if (state.dragging === null) return;
  state.dragging = null;
  requestGenerate();
});

editor.addEventListener("dblclick", (event) => {
  const k = jointAt(event);
  if (k !== null) setJoint(k, false);
});

// ---------------------------------------------------------------- start

async function start() {
  try {
    state.info = await getJSON("/api/info");
    if (state.info.size) state.size = state.info.size;
    buildJointList();
    drawEditor();
    await loadModels();
    const gallery = await loadGallery();
    if (state.info.model_error) showError(state.info.model_error);
    // start with the first person in the first pose, so the page shows a result at once
    const firstPerson = $("#people img");
    const firstPose = $("#poses canvas");
    if (firstPose) firstPose.click();
    if (firstPerson && gallery.people.length) firstPerson.click();
  } catch (error) {
    showError(error.message);
  }
}

start();
