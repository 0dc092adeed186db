// earmark serve — live page.
//
// Microphone -> AudioWorklet ('earmark-capture', worklet.js) -> ~40 ms Float32
// blocks -> websocket /stream. The server answers every block with scores,
// detections and new log-mel spectrogram columns, drawn here. A drop zone
// sends whole files to /classify. No dependencies, no build step.

'use strict';

// ---------------------------------------------------------------- constants

const BLOCK_SECONDS = 0.04;          // network block length (~2048 samples at 48 kHz)
const WORKLET_CHUNK = 512;           // frames per worklet -> main thread message
const WAVEFORM_SECONDS = 3;          // history shown by the waveform
const LOG_LIMIT = 50;                // entries kept in the detection list
const DETECTIONS_KEPT = 1000;        // entries kept in window.earmark.detections
const HEARD_MS = 1000;               // how long a detected label is flashed
const STOP_GRACE_MS = 3000;          // wait this long for {"type":"end"} after stop
const SPECTROGRAM_COLUMN_CSS_PX = 2; // width of one live spectrogram column
const DEFAULT_N_MELS = 64;
const STRIP_LANE_CSS_PX = 18;        // height of one lane of the file windows strip
const STRIP_MAX_LANES = 4;

// Canvas colours (kept in step with style.css).
const WAVE_BACKGROUND = '#0b0d12';
const WAVE_AXIS = '#262b36';
const WAVE_COLOUR = '#7aa2f7';

// Magma-like colour map, 8 anchors from dark to bright.
const MAGMA_ANCHORS = [
  [0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129],
  [181, 54, 122], [229, 80, 100], [251, 135, 97], [252, 253, 191],
];
const COLORMAP = buildColormap(MAGMA_ANCHORS, 256);

// ------------------------------------------------------------ shared state

// Exposed for automated tests; mutated in place, never replaced.
const earmark = {
  blocksSent: 0,
  resultsReceived: 0,
  columnsDrawn: 0,
  detections: [],   // {time, label, score}, oldest first
  labels: [],
  state: 'idle',    // text of the connection state shown in #status
  latencyMs: null,  // last server latency
};
window.earmark = earmark;

// What the animation frame loop draws; handlers only set the dirty flags.
const view = {
  nMels: DEFAULT_N_MELS,
  threshold: null,
  inputRate: null,
  modelRate: null,
  statusIsError: false,
  statusDirty: true,
  scores: null,
  scoresDirty: false,
  pendingColumns: [],   // Uint8Array per spectrogram column, not drawn yet
  wave: null,           // ring buffer of the last WAVEFORM_SECONDS of samples
  waveWrite: 0,         // next write position == oldest sample
  waveDirty: true,
};

let ui = {};            // DOM elements, filled in init()
let scoreRows = [];     // {row, fill, value} per label
let live = null;        // the running microphone/websocket session
let starting = false;   // true while getUserMedia / worklet setup is pending
let heardTimer = 0;
let fileUpload = null;  // AbortController of the request in flight
let fileView = null;    // last /classify result, kept for redraws on resize

// ------------------------------------------------------------------ helpers

function byId(id) {
  return document.getElementById(id);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function isFiniteNumber(value) {
  return typeof value === 'number' && Number.isFinite(value);
}

function fixed(value, digits = 2) {
  return isFiniteNumber(value) ? value.toFixed(digits) : '—';
}

function clamp01(value) {
  return isFiniteNumber(value) ? Math.min(1, Math.max(0, value)) : 0;
}

function firstString(...values) {
  return values.find((v) => typeof v === 'string' && v.length > 0);
}

function decodeBase64(text) {
  if (typeof text !== 'string' || text.length === 0) return new Uint8Array(0);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// 256-entry RGB table (flat Uint8Array, 3 bytes per entry) interpolated
// linearly between evenly spaced anchor colours.
function buildColormap(anchors, size) {
  const table = new Uint8Array(size * 3);
  const segments = anchors.length - 1;
  for (let i = 0; i < size; i++) {
    const position = (i / (size - 1)) * segments;
    const low = Math.min(Math.floor(position), segments - 1);
    const t = position - low;
    for (let c = 0; c < 3; c++) {
      table[i * 3 + c] = Math.round(anchors[low][c] * (1 - t) + anchors[low + 1][c] * t);
    }
  }
  return table;
}

// Distinct, stable colour per label: golden-angle hue steps over label index.
function labelColour(label, alpha = 1) {
  let index = earmark.labels.indexOf(label);
  if (index < 0) {
    index = 0;
    for (const ch of String(label)) index = (index * 31 + ch.charCodeAt(0)) >>> 0;
  }
  const hue = (index * 137.508) % 360;
  return `hsla(${hue.toFixed(1)}, 65%, 58%, ${alpha})`;
}

// -------------------------------------------------------------- status line

function setState(text, isError = false) {
  earmark.state = text;
  view.statusIsError = isError;
  view.statusDirty = true;
}

function renderStatus() {
  const parts = [earmark.state];
  if (view.inputRate) {
    let rates = `input ${Math.round(view.inputRate)} Hz`;
    if (view.modelRate) rates += ` → model ${view.modelRate} Hz`;
    parts.push(rates);
  }
  parts.push(`${earmark.blocksSent} blocks sent`);
  if (isFiniteNumber(earmark.latencyMs)) parts.push(`latency ${earmark.latencyMs.toFixed(1)} ms`);
  ui.status.textContent = parts.join(' · ');
  ui.status.classList.toggle('error', view.statusIsError);
}

function setButton(mode) {
  const modes = {
    idle: ['Start', false],
    starting: ['Starting…', true],
    running: ['Stop', false],
    stopping: ['Stopping…', true],
  };
  const [text, disabled] = modes[mode];
  ui.start.textContent = text;
  ui.start.disabled = disabled;
  ui.start.classList.toggle('running', mode === 'running');
}

// --------------------------------------------------------------- model info

async function loadModelInfo() {
  try {
    const response = await fetch('/model', { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    showModelInfo(await response.json());
  } catch (err) {
    ui.model.textContent = `model information unavailable (${err.message})`;
  }
}

function showModelInfo(info) {
  if (!info || typeof info !== 'object') {
    ui.model.textContent = 'model information unavailable';
    return;
  }
  const labels = Array.isArray(info.labels) ? info.labels
    : Array.isArray(info.classes) ? info.classes : [];
  const name = firstString(info.name, info.model, info.architecture, info.arch, info.path) || 'model';
  const parts = [name];
  const rate = info.sample_rate ?? info.model_rate ?? info.rate;
  if (isFiniteNumber(rate)) parts.push(`${rate} Hz`);
  if (labels.length) parts.push(`${labels.length} labels: ${summariseLabels(labels)}`);
  ui.model.textContent = parts.join(' · ');
  // The stream's "ready" message is authoritative; use these until then.
  if (labels.length && earmark.labels.length === 0) setLabels(labels);
}

function summariseLabels(labels, shown = 10) {
  const head = labels.slice(0, shown).map(String).join(', ');
  return labels.length > shown ? `${head}, … (+${labels.length - shown} more)` : head;
}

// -------------------------------------------------------------- score bars

function setLabels(labels) {
  earmark.labels.splice(0, earmark.labels.length, ...labels.map(String));
  buildScoreRows();
}

function buildScoreRows() {
  ui.scores.replaceChildren();
  scoreRows = earmark.labels.map((label) => {
    const row = element('div', 'score-row');
    const fill = element('div', 'score-fill');
    const track = element('div', 'score-track');
    const value = element('span', 'score-value', '—');
    track.append(fill);
    row.append(element('span', 'score-label', label), track, value);
    row.title = label;
    ui.scores.append(row);
    return { row, fill, value };
  });
  if (scoreRows.length === 0) {
    ui.scores.append(element('p', 'empty', 'no labels yet'));
  }
  showThreshold();
}

function showThreshold() {
  const percent = isFiniteNumber(view.threshold) ? `${clamp01(view.threshold) * 100}%` : '-10%';
  ui.scores.style.setProperty('--threshold', percent);
}

function renderScores() {
  const scores = view.scores;
  if (!scores) return;
  if (scores.length > earmark.labels.length) {
    // More scores than known labels: name the extra ones by index.
    const extra = [];
    for (let i = earmark.labels.length; i < scores.length; i++) extra.push(`#${i}`);
    setLabels(earmark.labels.concat(extra));
  }
  let top = -1;
  scores.forEach((score, i) => {
    if (isFiniteNumber(score) && (top < 0 || score > scores[top])) top = i;
  });
  scoreRows.forEach((entry, i) => {
    const score = scores[i];
    entry.fill.style.width = `${clamp01(score) * 100}%`;
    entry.value.textContent = fixed(score);
    entry.row.classList.toggle('top', i === top);
  });
}

// ----------------------------------------------------------- detection log

function addDetection(detection) {
  if (!detection || typeof detection !== 'object') return;
  const time = Number(detection.time);
  const score = Number(detection.score);
  const label = String(detection.label ?? '?');
  earmark.detections.push({ time, label, score });
  if (earmark.detections.length > DETECTIONS_KEPT) earmark.detections.shift();

  const item = element('li');
  item.append(
    element('span', 'time', `${fixed(time)} s`), ' ',
    element('span', 'label', label), ' ',
    element('span', 'score', fixed(score)),
  );
  ui.detections.prepend(item);
  while (ui.detections.children.length > LOG_LIMIT) ui.detections.lastElementChild.remove();
  flashHeard(label);
}

function flashHeard(label) {
  ui.heard.textContent = label;
  ui.heard.classList.add('flash');
  clearTimeout(heardTimer);
  heardTimer = setTimeout(() => ui.heard.classList.remove('flash'), HEARD_MS);
}

// ---------------------------------------------------------------- waveform

function resetWaveform(rate) {
  view.wave = new Float32Array(Math.max(1, Math.round(rate * WAVEFORM_SECONDS)));
  view.waveWrite = 0;
  view.waveDirty = true;
}

function pushWaveform(samples) {
  const wave = view.wave;
  if (!wave) return;
  for (let i = 0; i < samples.length; i++) {
    wave[view.waveWrite] = samples[i];
    view.waveWrite = (view.waveWrite + 1) % wave.length;
  }
  view.waveDirty = true;
}

// Min/max envelope of the ring buffer, one device pixel column at a time.
function drawWaveform() {
  const canvas = ui.waveform;
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  const middle = height / 2;
  ctx.fillStyle = WAVE_BACKGROUND;
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = WAVE_AXIS;
  ctx.fillRect(0, Math.floor(middle), width, 1);

  const wave = view.wave;
  if (!wave) return;
  const count = wave.length;
  const amplitude = middle - 1;
  ctx.fillStyle = WAVE_COLOUR;
  for (let x = 0; x < width; x++) {
    const start = Math.floor((x * count) / width);
    const end = Math.max(start + 1, Math.floor(((x + 1) * count) / width));
    let low = 1;
    let high = -1;
    for (let i = start; i < end; i++) {
      const v = wave[(view.waveWrite + i) % count]; // oldest first
      if (v < low) low = v;
      if (v > high) high = v;
    }
    const top = middle - clampUnit(high) * amplitude;
    const bottom = middle - clampUnit(low) * amplitude;
    ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

function clampUnit(value) {
  return Math.min(1, Math.max(-1, value));
}

// ------------------------------------------------------ live spectrogram

function columnWidthPx() {
  return Math.max(1, Math.round(SPECTROGRAM_COLUMN_CSS_PX * (window.devicePixelRatio || 1)));
}

function queueColumns(message) {
  const columns = Number(message.columns) || 0;
  if (columns <= 0) return;
  const bytes = decodeBase64(message.spectrogram);
  let nMels = view.nMels;
  if (bytes.length !== columns * nMels && bytes.length % columns === 0) {
    nMels = bytes.length / columns; // trust the data over a stale n_mels
    view.nMels = nMels;
  }
  const usable = Math.min(columns, Math.floor(bytes.length / nMels));
  for (let c = 0; c < usable; c++) {
    view.pendingColumns.push(bytes.subarray(c * nMels, (c + 1) * nMels));
  }
  // If frames are not being drawn (hidden tab), keep only what fits on the
  // canvas; the rest would scroll off anyway, so it counts as drawn.
  const keep = Math.ceil(ui.spectrogram.width / columnWidthPx()) + 1;
  const excess = view.pendingColumns.length - keep;
  if (excess > 0) {
    view.pendingColumns.splice(0, excess);
    earmark.columnsDrawn += excess;
  }
}

// Scroll the canvas left by the new columns' width, then paint them at the
// right edge; bin 0 (lowest frequency) goes at the bottom.
function drawSpectrogramColumns() {
  const canvas = ui.spectrogram;
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  const columns = view.pendingColumns;
  view.pendingColumns = [];
  const columnWidth = columnWidthPx();
  const visible = columns.slice(-Math.ceil(width / columnWidth));
  const stripWidth = visible.length * columnWidth;

  if (stripWidth < width) {
    ctx.drawImage(canvas, stripWidth, 0, width - stripWidth, height, 0, 0, width - stripWidth, height);
  }
  const image = ctx.createImageData(stripWidth, height);
  visible.forEach((column, i) => paintColumn(image, column, i * columnWidth, columnWidth));
  ctx.putImageData(image, width - stripWidth, 0);
  earmark.columnsDrawn += columns.length;
}

function paintColumn(image, column, x0, columnWidth) {
  const { width, height, data } = image;
  const bins = column.length;
  for (let y = 0; y < height; y++) {
    const bin = Math.min(bins - 1, Math.floor(((height - 1 - y) * bins) / height));
    const colour = column[bin] * 3;
    for (let dx = 0; dx < columnWidth; dx++) {
      const offset = (y * width + x0 + dx) * 4;
      data[offset] = COLORMAP[colour];
      data[offset + 1] = COLORMAP[colour + 1];
      data[offset + 2] = COLORMAP[colour + 2];
      data[offset + 3] = 255;
    }
  }
}

function clearSpectrogram() {
  const canvas = ui.spectrogram;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = `rgb(${COLORMAP[0]}, ${COLORMAP[1]}, ${COLORMAP[2]})`;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

// --------------------------------------------------------- animation loop

function frame() {
  if (view.waveDirty) {
    drawWaveform();
    view.waveDirty = false;
  }
  if (view.pendingColumns.length) drawSpectrogramColumns();
  if (view.scoresDirty) {
    renderScores();
    view.scoresDirty = false;
  }
  if (view.statusDirty) {
    renderStatus();
    view.statusDirty = false;
  }
  requestAnimationFrame(frame);
}

// ------------------------------------------------------ canvases & resize

// Match each canvas's backing store to its CSS size times devicePixelRatio.
// Returns true when the size changed (the content is then lost).
function fitCanvas(canvas) {
  const size = wantedSize(canvas);
  if (!size) return false;
  canvas.width = size.width;
  canvas.height = size.height;
  return true;
}

// The backing-store size a canvas should have, or null if it is already
// right or hidden (zero-sized).
function wantedSize(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  if (width === 0 || height === 0) return null;
  if (canvas.width === width && canvas.height === height) return null;
  return { width, height };
}

// The live spectrogram keeps its history across resizes: copy it aside and
// paint it back anchored at the right edge.
function fitSpectrogramCanvas() {
  const canvas = ui.spectrogram;
  if (!wantedSize(canvas)) return;
  const old = document.createElement('canvas');
  old.width = canvas.width;
  old.height = canvas.height;
  old.getContext('2d').drawImage(canvas, 0, 0);
  const oldRatio = Number(canvas.dataset.ratio) || 1;
  fitCanvas(canvas);
  const ratio = window.devicePixelRatio || 1;
  canvas.dataset.ratio = String(ratio);
  clearSpectrogram();
  const scaledWidth = (old.width * ratio) / oldRatio;
  canvas.getContext('2d').drawImage(old, canvas.width - scaledWidth, 0, scaledWidth, canvas.height);
}

function fitAllCanvases() {
  fitSpectrogramCanvas();
  if (fitCanvas(ui.waveform)) view.waveDirty = true;
  const fileResized = fitCanvas(ui.fileSpectrogram);
  const stripResized = fitCanvas(ui.fileStrip);
  if ((fileResized || stripResized) && fileView) drawFileResult();
}

function watchResizes() {
  if ('ResizeObserver' in window) {
    const observer = new ResizeObserver(fitAllCanvases);
    [ui.waveform, ui.spectrogram, ui.fileSpectrogram, ui.fileStrip].forEach((c) => observer.observe(c));
  }
  // Also catches devicePixelRatio changes (browser zoom, moving screens).
  window.addEventListener('resize', fitAllCanvases);
}

// --------------------------------------------------------- microphone

function describeMicError(err) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'Microphone access was refused. Allow the microphone for this page (address bar) and press Start again.';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') {
    return 'No usable microphone was found.';
  }
  if (name === 'NotReadableError') {
    return 'The microphone is in use by another application or could not be opened.';
  }
  return `Could not open the microphone: ${(err && err.message) || err}`;
}

async function openAudioGraph(stream) {
  const context = new AudioContext(); // native rate; the server resamples
  try {
    await context.audioWorklet.addModule('/static/worklet.js');
    const source = context.createMediaStreamSource(stream);
    // channelCount 1 + 'explicit' makes the browser down-mix to mono.
    const node = new AudioWorkletNode(context, 'earmark-capture', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: 'explicit',
      channelInterpretation: 'speakers',
      processorOptions: { chunkSize: WORKLET_CHUNK },
    });
    // Route through a silent gain to the destination so every browser keeps
    // pulling the node, without playing the microphone back.
    const mute = context.createGain();
    mute.gain.value = 0;
    source.connect(node);
    node.connect(mute);
    mute.connect(context.destination);
    await context.resume();
    return { context, source, node, mute };
  } catch (err) {
    context.close().catch(() => {});
    throw err;
  }
}

function stopAudio(session) {
  if (session.audioStopped) return;
  session.audioStopped = true;
  session.node.port.onmessage = null;
  for (const node of [session.source, session.node, session.mute]) {
    try { node.disconnect(); } catch (err) { /* already disconnected */ }
  }
  session.stream.getTracks().forEach((track) => track.stop());
  session.context.close().catch(() => {});
}

// Worklet chunks -> waveform + fixed-size network blocks.
function onSamples(session, samples) {
  if (!(samples instanceof Float32Array)) return;
  pushWaveform(samples);
  let offset = 0;
  while (offset < samples.length) {
    const count = Math.min(samples.length - offset, session.block.length - session.blockFill);
    session.block.set(samples.subarray(offset, offset + count), session.blockFill);
    session.blockFill += count;
    offset += count;
    if (session.blockFill === session.block.length) {
      sendBlock(session, session.block);
      session.block = new Float32Array(session.block.length);
      session.blockFill = 0;
    }
  }
}

// Float32Array buffers are little-endian on every platform browsers run on.
// Audio captured before the server's "ready" message is dropped.
function sendBlock(session, block) {
  const ws = session.ws;
  if (!session.ready || !ws || ws.readyState !== WebSocket.OPEN) return;
  ws.send(block.buffer);
  earmark.blocksSent += 1;
  view.statusDirty = true;
}

// --------------------------------------------------------- start / stop

async function startLive() {
  if (starting || live) return;
  starting = true;
  setButton('starting');
  try {
    await openSession();
  } finally {
    starting = false;
  }
}

async function openSession() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    failStart('This browser cannot open the microphone here (it needs https or http://localhost).');
    return;
  }
  setState('requesting microphone…');
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
  } catch (err) {
    failStart(describeMicError(err));
    return;
  }
  let graph;
  try {
    graph = await openAudioGraph(stream);
  } catch (err) {
    stream.getTracks().forEach((track) => track.stop());
    failStart(`Could not start audio processing: ${err.message || err}`);
    return;
  }
  const rate = graph.context.sampleRate;
  const blockSize = Math.max(1, Math.round(rate * BLOCK_SECONDS));
  const session = {
    ...graph,
    stream,
    ws: null,
    ready: false,
    stopping: false,
    ended: false,
    failed: false,
    audioStopped: false,
    stopTimer: 0,
    block: new Float32Array(blockSize),
    blockFill: 0,
  };
  live = session;
  view.inputRate = rate;
  view.modelRate = null;
  resetWaveform(rate);
  session.node.port.onmessage = (event) => onSamples(session, event.data);
  // The stream can end on its own (device unplugged, permission revoked).
  stream.getAudioTracks().forEach((track) => track.addEventListener('ended', () => {
    if (live === session && !session.stopping) stopLive('microphone ended');
  }));
  openSocket(session);
  setButton('running');
}

function failStart(message) {
  setState(message, true);
  setButton('idle');
}

function stopLive(reason = 'stopping…') {
  const session = live;
  if (!session || session.stopping) return;
  // Send the partial block so the tail of the recording is not lost.
  if (session.blockFill > 0) sendBlock(session, session.block.slice(0, session.blockFill));
  session.blockFill = 0;
  session.stopping = true;
  stopAudio(session);
  setButton('stopping');
  setState(reason);
  const ws = session.ws;
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: 'stop' }));
    // Wait for {"type":"end"}, but not forever.
    session.stopTimer = setTimeout(() => ws.close(1000, 'client stop'), STOP_GRACE_MS);
  } else if (ws) {
    ws.close();
  } else {
    finishSession(session);
  }
}

function finishSession(session) {
  clearTimeout(session.stopTimer);
  stopAudio(session);
  if (live === session) {
    live = null;
    setButton('idle');
  }
}

function onStartClick() {
  if (live) stopLive();
  else startLive();
}

// ------------------------------------------------------------- websocket

function streamUrl(rate) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/stream?rate=${encodeURIComponent(rate)}&format=f32`;
}

function openSocket(session) {
  let ws;
  try {
    ws = new WebSocket(streamUrl(session.context.sampleRate));
  } catch (err) {
    session.failed = true;
    setState(`Could not open the websocket: ${err.message || err}`, true);
    finishSession(session);
    return;
  }
  ws.binaryType = 'arraybuffer';
  session.ws = ws;
  setState('connecting…');
  ws.addEventListener('open', () => {
    if (!session.stopping) setState('connected, waiting for the model…');
  });
  ws.addEventListener('message', (event) => onSocketMessage(session, event));
  ws.addEventListener('close', (event) => onSocketClose(session, event));
  // 'error' is always followed by 'close', which reports the state.
}

function onSocketMessage(session, event) {
  if (typeof event.data !== 'string') return; // the server only sends JSON text
  let message;
  try {
    message = JSON.parse(event.data);
  } catch (err) {
    return;
  }
  if (!message || typeof message !== 'object') return;
  switch (message.type) {
    case 'ready': onReady(session, message); break;
    case 'result': onResult(message); break;
    case 'error': onServerError(session, message); break;
    case 'end': onEnd(session, message); break;
    default: break; // unknown message types are ignored
  }
}

function onReady(session, message) {
  session.ready = true;
  if (Array.isArray(message.labels) && message.labels.length) setLabels(message.labels);
  if (isFiniteNumber(message.model_rate)) view.modelRate = message.model_rate;
  if (isFiniteNumber(message.input_rate)) view.inputRate = message.input_rate;
  if (isFiniteNumber(message.threshold)) {
    view.threshold = message.threshold;
    showThreshold();
  }
  const spectrogram = message.spectrogram || {};
  if (isFiniteNumber(spectrogram.n_mels) && spectrogram.n_mels > 0) view.nMels = spectrogram.n_mels;
  if (!session.stopping) setState('streaming');
}

function onResult(message) {
  earmark.resultsReceived += 1;
  if (isFiniteNumber(message.latency_ms)) earmark.latencyMs = message.latency_ms;
  view.statusDirty = true;
  const strides = Array.isArray(message.strides) ? message.strides : [];
  const last = strides[strides.length - 1];
  if (last && Array.isArray(last.scores)) {
    view.scores = last.scores.map(Number);
    view.scoresDirty = true;
  }
  if (Array.isArray(message.detections)) message.detections.forEach(addDetection);
  try {
    queueColumns(message);
  } catch (err) {
    // A malformed spectrogram must not break scores and detections.
  }
}

function onServerError(session, message) {
  session.failed = true;
  setState(`error: ${message.error || 'unknown server error'}`, true);
  stopAudio(session);
  if (live === session) setButton('stopping');
  // The server closes the connection next; close it ourselves if it does not.
  const ws = session.ws;
  clearTimeout(session.stopTimer);
  session.stopTimer = setTimeout(() => ws.close(), STOP_GRACE_MS);
}

function onEnd(session, message) {
  session.ended = true;
  const audio = isFiniteNumber(message.audio_s) ? ` (${message.audio_s.toFixed(1)} s of audio)` : '';
  setState(`stopped${audio}`);
  finishSession(session); // ready for a new Start before the socket is fully closed
  session.ws.close(1000, 'done');
}

function onSocketClose(session, event) {
  const wasLive = live === session;
  finishSession(session);
  if (!wasLive || session.failed || session.ended) return; // keep the message shown
  if (session.stopping) {
    setState('stopped');
  } else if (!session.ready) {
    setState(`could not connect to the stream (code ${event.code}${event.reason ? `: ${event.reason}` : ''})`, true);
  } else {
    setState(`disconnected (code ${event.code}${event.reason ? `: ${event.reason}` : ''})`, true);
  }
}

// ------------------------------------------------------------ file upload

function setupDropZone() {
  const drop = ui.drop;
  drop.addEventListener('click', () => ui.file.click());
  drop.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      ui.file.click();
    }
  });
  ui.file.addEventListener('change', () => {
    const file = ui.file.files && ui.file.files[0];
    ui.file.value = ''; // allow choosing the same file again
    if (file) classifyFile(file);
  });
  drop.addEventListener('dragenter', (event) => { event.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', (event) => {
    if (!drop.contains(event.relatedTarget)) drop.classList.remove('over');
  });
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) classifyFile(file);
  });
  // A file dropped next to the zone must not make the browser navigate away.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());
}

function showFileMessage(text, isError = false) {
  ui.fileMessage.textContent = text;
  ui.fileMessage.classList.toggle('error', isError);
}

async function classifyFile(file) {
  if (fileUpload) fileUpload.abort();
  const controller = new AbortController();
  fileUpload = controller;
  ui.drop.classList.add('busy');
  ui.fileDetails.hidden = true;
  showFileMessage(`Classifying ${file.name}…`);
  const form = new FormData();
  form.append('file', file, file.name);
  try {
    const response = await fetch('/classify?spectrogram=1&windows=1', {
      method: 'POST', body: form, signal: controller.signal,
    });
    const { json, text } = await readBody(response);
    if (!response.ok) {
      const detail = (json && json.error) || text.slice(0, 300) || response.statusText;
      showFileMessage(`Error (HTTP ${response.status}): ${detail}`, true);
    } else if (!json || typeof json !== 'object') {
      showFileMessage('Error: the server sent an unexpected response.', true);
    } else {
      showFileResult(json, file.name);
    }
  } catch (err) {
    if (err.name !== 'AbortError') showFileMessage(`Upload failed: ${err.message || err}`, true);
  } finally {
    if (fileUpload === controller) {
      fileUpload = null;
      ui.drop.classList.remove('busy');
    }
  }
}

async function readBody(response) {
  const text = await response.text();
  try {
    return { json: JSON.parse(text), text };
  } catch (err) {
    return { json: null, text };
  }
}

function showFileResult(result, fallbackName) {
  const spectrogram = result.spectrogram && typeof result.spectrogram === 'object' ? result.spectrogram : null;
  fileView = {
    duration: isFiniteNumber(result.duration) ? result.duration : null,
    windows: Array.isArray(result.windows) ? result.windows.filter((w) => w && typeof w === 'object') : [],
    spectrogram: spectrogram && decodeFileSpectrogram(spectrogram),
  };
  showFileMessage('');
  ui.fileName.textContent = firstString(result.file, fallbackName) || '—';
  ui.fileDuration.textContent = fileView.duration === null ? '—' : `${fileView.duration.toFixed(2)} s`;
  ui.fileLabel.textContent = result.label != null ? String(result.label) : '—';
  renderTopList(Array.isArray(result.top) ? result.top : []);
  renderWindowsTable(fileView.windows);
  ui.fileDetails.hidden = false; // must be visible before canvases can be sized
  setStripHeight(fileView.windows);
  fitCanvas(ui.fileSpectrogram);
  fitCanvas(ui.fileStrip);
  drawFileResult();
}

function decodeFileSpectrogram(spectrogram) {
  let bytes;
  try {
    bytes = decodeBase64(spectrogram.data);
  } catch (err) {
    return null;
  }
  const nMels = Number(spectrogram.n_mels) || DEFAULT_N_MELS;
  const columns = Math.min(Number(spectrogram.columns) || Infinity, Math.floor(bytes.length / nMels));
  if (!columns) return null;
  return { bytes, nMels, columns, fps: Number(spectrogram.frames_per_second) || null };
}

function renderTopList(top) {
  ui.fileTop.replaceChildren();
  for (const entry of top) {
    if (!entry || typeof entry !== 'object') continue;
    const label = String(entry.label ?? '?');
    const probability = Number(entry.probability);
    const item = element('li');
    const name = element('span', 'score-label');
    const swatch = element('span', 'swatch');
    swatch.style.background = labelColour(label);
    name.append(swatch, label);
    const track = element('div', 'score-track');
    const fill = element('div', 'score-fill');
    fill.style.width = `${clamp01(probability) * 100}%`;
    fill.style.background = labelColour(label);
    track.append(fill);
    item.append(name, track, element('span', 'score-value', fixed(probability)));
    ui.fileTop.append(item);
  }
  if (!ui.fileTop.children.length) ui.fileTop.append(element('li', 'empty', 'no scores'));
}

function renderWindowsTable(windows) {
  const body = ui.windows.tBodies[0];
  body.replaceChildren();
  for (const win of windows) {
    const row = element('tr');
    const label = String(win.label ?? '?');
    const labelCell = element('td');
    const swatch = element('span', 'swatch');
    swatch.style.background = labelColour(label);
    labelCell.append(swatch, label);
    row.append(
      element('td', '', fixed(Number(win.start))),
      element('td', '', fixed(Number(win.end))),
      labelCell,
      element('td', '', fixed(Number(win.probability))),
    );
    body.append(row);
  }
  if (!windows.length) {
    const row = element('tr');
    const cell = element('td', 'empty', 'no windows');
    cell.colSpan = 4;
    row.append(cell);
    body.append(row);
  }
}

// ------------------------------------------------ file spectrogram & strip

// Seconds covered by the drawing: the spectrogram's span when known.
function fileSpanSeconds() {
  const spec = fileView.spectrogram;
  if (spec && spec.fps) return spec.columns / spec.fps;
  if (fileView.duration) return fileView.duration;
  const ends = fileView.windows.map((w) => Number(w.end)).filter(isFiniteNumber);
  return ends.length ? Math.max(...ends) : 1;
}

function drawFileResult() {
  drawFileSpectrogram();
  drawWindowStrip();
}

// Whole file scaled to the canvas width: each pixel column shows the max of
// the spectrogram columns it covers (or the nearest one when zoomed in).
function drawFileSpectrogram() {
  const canvas = ui.fileSpectrogram;
  const ctx = canvas.getContext('2d');
  const spec = fileView.spectrogram;
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!spec) {
    ctx.fillStyle = '#8b93a7';
    ctx.font = `${Math.round(12 * (window.devicePixelRatio || 1))}px system-ui, sans-serif`;
    ctx.fillText('no spectrogram', 8, canvas.height / 2);
    return;
  }
  const width = canvas.width;
  const { bytes, nMels, columns } = spec;
  const image = new ImageData(width, nMels);
  const column = new Uint8Array(nMels);
  for (let x = 0; x < width; x++) {
    const start = Math.min(columns - 1, Math.floor((x * columns) / width));
    const end = Math.max(start + 1, Math.min(columns, Math.floor(((x + 1) * columns) / width)));
    column.fill(0);
    for (let c = start; c < end; c++) {
      for (let b = 0; b < nMels; b++) column[b] = Math.max(column[b], bytes[c * nMels + b]);
    }
    for (let b = 0; b < nMels; b++) {
      const offset = ((nMels - 1 - b) * width + x) * 4; // low bins at the bottom
      const colour = column[b] * 3;
      image.data[offset] = COLORMAP[colour];
      image.data[offset + 1] = COLORMAP[colour + 1];
      image.data[offset + 2] = COLORMAP[colour + 2];
      image.data[offset + 3] = 255;
    }
  }
  // Paint at n_mels rows, then stretch vertically to the canvas height.
  const scratch = document.createElement('canvas');
  scratch.width = width;
  scratch.height = nMels;
  scratch.getContext('2d').putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0, width, canvas.height);
}

// Overlapping windows are stacked in lanes (first lane that is free).
function assignLanes(windows) {
  const laneEnds = [];
  return windows
    .map((win) => ({ win, start: Number(win.start), end: Number(win.end) }))
    .filter((w) => isFiniteNumber(w.start) && isFiniteNumber(w.end) && w.end > w.start)
    .sort((a, b) => a.start - b.start)
    .map((w) => {
      let lane = laneEnds.findIndex((end) => end <= w.start + 1e-9);
      if (lane < 0 && laneEnds.length < STRIP_MAX_LANES) lane = laneEnds.length;
      if (lane < 0) lane = laneEnds.indexOf(Math.min(...laneEnds));
      laneEnds[lane] = w.end;
      return { ...w, lane };
    });
}

function setStripHeight(windows) {
  const lanes = Math.max(1, ...assignLanes(windows).map((w) => w.lane + 1));
  ui.fileStrip.style.height = `${lanes * STRIP_LANE_CSS_PX}px`;
}

function drawWindowStrip() {
  const canvas = ui.fileStrip;
  const ctx = canvas.getContext('2d');
  const ratio = window.devicePixelRatio || 1;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const placed = assignLanes(fileView.windows);
  if (!placed.length) return;
  const lanes = Math.max(...placed.map((w) => w.lane + 1));
  const laneHeight = canvas.height / lanes;
  const scale = canvas.width / fileSpanSeconds();
  ctx.font = `${Math.round(11 * ratio)}px system-ui, sans-serif`;
  ctx.textBaseline = 'middle';
  for (const { win, start, end, lane } of placed) {
    const label = String(win.label ?? '?');
    const x = start * scale;
    const w = Math.max(1, (end - start) * scale);
    const y = lane * laneHeight;
    ctx.fillStyle = labelColour(label, 0.85);
    ctx.fillRect(x, y + ratio, w, laneHeight - 2 * ratio);
    ctx.strokeStyle = '#0b0d12';
    ctx.lineWidth = ratio;
    ctx.strokeRect(x, y + ratio, w, laneHeight - 2 * ratio);
    if (ctx.measureText(label).width + 6 * ratio < w) {
      ctx.fillStyle = '#0b0d12';
      ctx.fillText(label, x + 3 * ratio, y + laneHeight / 2);
    }
  }
}

// ------------------------------------------------------------------- init

function init() {
  ui = {
    start: byId('start'),
    status: byId('status'),
    model: byId('model'),
    heard: byId('heard'),
    waveform: byId('waveform'),
    spectrogram: byId('spectrogram'),
    scores: byId('scores'),
    detections: byId('detections'),
    drop: byId('drop'),
    file: byId('file'),
    fileMessage: byId('file-message'),
    fileDetails: byId('file-details'),
    fileName: byId('file-name'),
    fileDuration: byId('file-duration'),
    fileLabel: byId('file-label'),
    fileTop: byId('file-top'),
    fileSpectrogram: byId('file-spectrogram'),
    fileStrip: byId('file-windows-strip'),
    windows: byId('windows'),
  };
  ui.start.addEventListener('click', onStartClick);
  setupDropZone();
  fitAllCanvases();
  clearSpectrogram();
  watchResizes();
  setButton('idle');
  loadModelInfo();
  requestAnimationFrame(frame);
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', init);
} else {
  init();
}
