// focalclick-edge page: open an image, click to segment through the /v1 API. Plain JS, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const view = $("view"), ctx = view.getContext("2d"), stage = $("stage");
const FILL = [31, 122, 224], PREVIEW = [255, 170, 0];
const LONG_PRESS_MS = 500, PREVIEW_REST_MS = 150;

const state = {
  sid: null, image: null, file: null, maskFile: null, w: 0, h: 0,
  clicks: [], fill: null, outline: null, preview: null, auth: false,
  queue: Promise.resolve(), busy: 0, previewSeq: 0, previewTimer: 0,
};

// ------------------------------------------------------------------------------------------ HTTP
function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = $("token").value.trim();
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(method, path, body, extraHeaders) {
  const r = await fetch(path, { method, body, headers: headers(extraHeaders) });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; return; }
  box.textContent = String(err.message || err);
  box.hidden = false;
}

// One request at a time, in order: clicks must reach the server in the order they were made.
function enqueue(task) {
  state.busy++;
  view.dataset.busy = String(state.busy);
  state.queue = state.queue.then(task).catch(showError).finally(() => {
    state.busy--;
    view.dataset.busy = String(state.busy);
  });
  return state.queue;
}

// ------------------------------------------------------------------------------------------ masks
async function decodeMaskPng(b64OrBlob) {
  const src = typeof b64OrBlob === "string" ? "data:image/png;base64," + b64OrBlob : URL.createObjectURL(b64OrBlob);
  const img = new Image();
  img.src = src;
  await img.decode();
  const c = document.createElement("canvas");
  c.width = state.w; c.height = state.h;
  const cx = c.getContext("2d");
  cx.drawImage(img, 0, 0);
  return cx.getImageData(0, 0, state.w, state.h).data;  // RGBA; R is the mask (0 / 255)
}

// The mask as two canvases: the tinted fill (opacity slider) and a 1-pixel outline.
function maskLayers(rgba, color, withOutline) {
  const w = state.w, h = state.h, n = w * h;
  const fill = new ImageData(w, h), line = withOutline ? new ImageData(w, h) : null;
  const f = fill.data, o = line ? line.data : null;
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (rgba[4 * i] < 128) continue;
    count++;
    const j = 4 * i;
    f[j] = color[0]; f[j + 1] = color[1]; f[j + 2] = color[2]; f[j + 3] = 255;
    if (o) {
      const x = i % w, y = (i - x) / w;
      const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 ||
        rgba[j - 4] < 128 || rgba[j + 4] < 128 || rgba[j - 4 * w] < 128 || rgba[j + 4 * w] < 128;
      if (edge) { o[j] = o[j + 1] = o[j + 2] = o[j + 3] = 255; }
    }
  }
  const toCanvas = (data) => {
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    c.getContext("2d").putImageData(data, 0, 0);
    return c;
  };
  return { fill: toCanvas(fill), outline: line ? toCanvas(line) : null, count };
}

// ------------------------------------------------------------------------------------------ drawing
// The canvas holds the image at full resolution; CSS scales it (up or down) to fit the stage.
function fitCanvas() {
  if (!state.w) return;
  const r = stage.getBoundingClientRect();
  const scale = Math.min((r.width - 16) / state.w, (window.innerHeight * 0.8) / state.h);
  view.style.width = Math.max(1, Math.floor(state.w * scale)) + "px";
  view.style.height = Math.max(1, Math.floor(state.h * scale)) + "px";
}
window.addEventListener("resize", fitCanvas);

function draw() {
  if (!state.image) return;
  ctx.globalAlpha = 1;
  ctx.drawImage(state.image, 0, 0);
  const opacity = Number($("opacity").value) / 100;
  if (state.preview) { ctx.globalAlpha = Math.max(0.25, opacity * 0.7); ctx.drawImage(state.preview, 0, 0); }
  if (state.fill) { ctx.globalAlpha = opacity; ctx.drawImage(state.fill, 0, 0); }
  ctx.globalAlpha = 1;
  if (state.outline && $("outline").checked) ctx.drawImage(state.outline, 0, 0);
  // Markers keep ~6 CSS pixels whatever the scale.
  const r = Math.max(2, 6 * state.w / (view.getBoundingClientRect().width || state.w));
  for (const [x, y, positive] of state.clicks) {
    ctx.beginPath();
    ctx.arc(x + 0.5, y + 0.5, r, 0, 2 * Math.PI);
    ctx.fillStyle = positive ? "#22b14c" : "#e0362c";
    ctx.fill();
    ctx.lineWidth = Math.max(1.5, r / 3);
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  }
}

function showTimings(t, roundTrip) {
  const rows = [];
  const label = { preprocess: "Target crop", segmentor: "Segmentor", focus_crop: "Focus crop", refiner: "Refiner",
                  merge: "Paste + merge", total: "Model total", wait: "Queue", encode: "Mask encode",
                  server: "Server total" };
  for (const k of ["preprocess", "segmentor", "focus_crop", "refiner", "merge", "total", "wait", "encode", "server"]) {
    if (t[k] === undefined) continue;
    rows.push(`<tr class="${k === "total" || k === "server" ? "total" : ""}"><td>${label[k]}</td><td>${t[k].toFixed(1)} ms</td></tr>`);
  }
  rows.push(`<tr class="total"><td>Round trip</td><td>${roundTrip.toFixed(1)} ms</td></tr>`);
  $("timings").tBodies[0].innerHTML = rows.join("");
}

async function applyAnswer(body, roundTrip) {
  const rgba = await decodeMaskPng(body.mask_png);
  const layers = maskLayers(rgba, FILL, true);
  state.fill = layers.fill;
  state.outline = layers.outline;
  state.preview = null;
  view.dataset.maskPixels = String(layers.count);
  view.dataset.clicks = String(state.clicks.length);
  $("status").textContent = `${state.clicks.length} click(s) · mask ${(100 * layers.count / (state.w * state.h)).toFixed(1)}% of the image`;
  if (body.timings) showTimings(body.timings, roundTrip);
  $("undo").disabled = state.clicks.length === 0;
  draw();
}

// ------------------------------------------------------------------------------------------ actions
function openImage(file) {
  if (!file) return;
  state.file = file;
  state.maskFile = null;
  return startSession();
}

function startSession() {
  return enqueue(async () => {
    showError(null);
    const form = new FormData();
    form.append("image", state.file, state.file.name || "image");
    if (state.maskFile) form.append("mask", state.maskFile, state.maskFile.name || "mask.png");
    if (state.sid) { fetch(`/v1/sessions/${state.sid}`, { method: "DELETE", headers: headers() }).catch(() => {}); }
    const body = await (await api("POST", "/v1/sessions", form)).json();
    const image = await createImageBitmap(state.file, { imageOrientation: "from-image" });
    Object.assign(state, { sid: body.session, image, w: body.width, h: body.height, clicks: [], fill: null,
                           outline: null, preview: null });
    view.width = body.width; view.height = body.height;
    stage.classList.add("loaded");
    fitCanvas();
    for (const id of ["reset", "download"]) $(id).disabled = false;
    $("undo").disabled = true;
    view.dataset.clicks = "0";
    view.dataset.maskPixels = "0";
    if (state.maskFile) {
      const layers = maskLayers(await decodeMaskPng(state.maskFile), FILL, true);
      state.fill = layers.fill; state.outline = layers.outline;
      view.dataset.maskPixels = String(layers.count);
    }
    $("status").textContent = `${body.width}×${body.height} image` + (state.maskFile ? " with a mask to correct" : "");
    view.dataset.session = body.session;
    draw();
  });
}

function addClick(x, y, positive) {
  if (!state.sid) return;
  cancelPreview();
  return enqueue(async () => {
    const t0 = performance.now();
    const r = await api("POST", `/v1/sessions/${state.sid}/clicks`, JSON.stringify({ x, y, positive }),
                        { "Content-Type": "application/json" });
    const body = await r.json();
    state.clicks.push([x, y, positive]);
    await applyAnswer(body, performance.now() - t0);
  });
}

function undoOrReset(what) {
  if (!state.sid) return;
  cancelPreview();
  return enqueue(async () => {
    const t0 = performance.now();
    const body = await (await api("POST", `/v1/sessions/${state.sid}/${what}`)).json();
    state.clicks = what === "reset" ? [] : state.clicks.slice(0, body.click);
    await applyAnswer(body, performance.now() - t0);
  });
}

function downloadMask() {
  if (!state.sid) return;
  return enqueue(async () => {
    const blob = await (await api("GET", `/v1/sessions/${state.sid}/mask.png`)).blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = ((state.file && state.file.name) || "image").replace(/\.[^.]*$/, "") + "_mask.png";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });
}

// ------------------------------------------------------------------------------------------ preview
function cancelPreview() {
  clearTimeout(state.previewTimer);
  state.previewSeq++;
  if (state.preview) { state.preview = null; draw(); }
}

function schedulePreview(x, y) {
  cancelPreview();
  if (!$("preview").checked || !state.sid) return;
  const seq = state.previewSeq;
  state.previewTimer = setTimeout(async () => {
    if (state.busy || seq !== state.previewSeq) return;  // a real click is in flight: no preview
    try {
      const r = await api("POST", `/v1/sessions/${state.sid}/clicks?preview=1`, JSON.stringify({ x, y, positive: true }),
                          { "Content-Type": "application/json" });
      const body = await r.json();
      if (seq !== state.previewSeq || state.busy) return;
      state.preview = maskLayers(await decodeMaskPng(body.mask_png), PREVIEW, false).fill;
      if (seq === state.previewSeq) draw();
    } catch (_) { /* a preview that fails is just not shown */ }
  }, PREVIEW_REST_MS);
}

// ------------------------------------------------------------------------------------------ input
function imagePoint(ev) {
  const rect = view.getBoundingClientRect();
  const x = Math.floor((ev.clientX - rect.left) * state.w / rect.width);
  const y = Math.floor((ev.clientY - rect.top) * state.h / rect.height);
  return [Math.min(Math.max(x, 0), state.w - 1), Math.min(Math.max(y, 0), state.h - 1)];
}

let touch = null;  // {x, y, timer, long} while a finger is down
view.addEventListener("pointerdown", (ev) => {
  if (!state.sid) return;
  if (ev.pointerType === "mouse") {
    if (ev.button === 0) { const [x, y] = imagePoint(ev); addClick(x, y, !ev.shiftKey); }
    else if (ev.button === 2) { const [x, y] = imagePoint(ev); addClick(x, y, false); }
    return;
  }
  const [x, y] = imagePoint(ev);
  touch = { x, y, sx: ev.clientX, sy: ev.clientY, long: false };
  touch.timer = setTimeout(() => { touch.long = true; addClick(x, y, false); }, LONG_PRESS_MS);
});
view.addEventListener("pointerup", (ev) => {
  if (!touch || ev.pointerType === "mouse") return;
  clearTimeout(touch.timer);
  if (!touch.long) addClick(touch.x, touch.y, true);
  touch = null;
});
view.addEventListener("pointercancel", () => { if (touch) clearTimeout(touch.timer); touch = null; });
view.addEventListener("pointermove", (ev) => {
  if (touch && Math.hypot(ev.clientX - touch.sx, ev.clientY - touch.sy) > 12) {
    clearTimeout(touch.timer); touch = null;
  }
  if (ev.pointerType === "mouse" && state.sid) { const [x, y] = imagePoint(ev); schedulePreview(x, y); }
});
view.addEventListener("pointerleave", cancelPreview);
view.addEventListener("contextmenu", (ev) => ev.preventDefault());

$("file").addEventListener("change", (ev) => { openImage(ev.target.files[0]); ev.target.value = ""; });
$("maskfile").addEventListener("change", (ev) => {
  const f = ev.target.files[0];
  ev.target.value = "";
  if (!f) return;
  if (!state.file) { showError("open an image first, then load its mask"); return; }
  state.maskFile = f;
  startSession();
});
$("undo").addEventListener("click", () => undoOrReset("undo"));
$("reset").addEventListener("click", () => undoOrReset("reset"));
$("download").addEventListener("click", downloadMask);
for (const id of ["opacity", "outline"]) $(id).addEventListener("input", draw);
$("preview").addEventListener("change", cancelPreview);
$("token").addEventListener("change", () => sessionStorage.setItem("fce-token", $("token").value));

document.addEventListener("keydown", (ev) => {
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "z" && !ev.shiftKey) {
    ev.preventDefault();
    if (state.clicks.length) undoOrReset("undo");
  }
});
for (const type of ["dragenter", "dragover"]) {
  stage.addEventListener(type, (ev) => { ev.preventDefault(); stage.classList.add("dragging"); });
}
stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
stage.addEventListener("drop", (ev) => {
  ev.preventDefault();
  stage.classList.remove("dragging");
  const f = ev.dataTransfer.files[0];
  if (f) openImage(f);
});
window.addEventListener("paste", (ev) => {
  for (const item of ev.clipboardData.items) {
    if (item.kind === "file" && item.type.startsWith("image/")) { openImage(item.getAsFile()); break; }
  }
});

// ------------------------------------------------------------------------------------------ start
(async () => {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  $("token").value = fromHash || sessionStorage.getItem("fce-token") || "";
  try {
    const h = await (await fetch("/healthz")).json();
    state.auth = h.auth;
    $("tokenbox").hidden = !h.auth;
    $("info").textContent = `model ${h.model} · run ${h.run}${h.run_choice === "auto" ? " (auto)" : ""} · ` +
      `${h.cpu} · ${h.cpus} CPU${h.cpus === 1 ? "" : "s"}`;
    document.body.dataset.ready = "1";
  } catch (err) { showError("the server does not answer /healthz: " + err.message); }
})();
