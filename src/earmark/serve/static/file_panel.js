// The file panel: a drop zone (or file input) sends one file to /classify;
// the answer is shown as details, top labels, a spectrogram of the whole
// file, a strip of the classified windows and a table of them.

import { paintColumn } from './colormap.js';
import { fitCanvas } from './drawing.js';
import { labelColour, labelName, scoreBar } from './scores.js';
import { ui } from './state.js';
import { decodeBase64, element, firstString, fixed, isFiniteNumber, pixelRatio } from './util.js';

const STRIP_LANE_CSS_PX = 18;  // height of one lane of the file windows strip
const STRIP_MAX_LANES = 4;
const STRIP_EDGE = '#0b0d12';

let fileUpload = null;  // AbortController of the request in flight
let fileView = null;    // last /classify result, kept for redraws on resize

// --------------------------------------------------------------- drop zone

function onKeyDown(event) {
  if (event.key === 'Enter' || event.key === ' ') {
    event.preventDefault();
    ui.file.click();
  }
}

function onFileChosen() {
  const file = ui.file.files && ui.file.files[0];
  ui.file.value = ''; // allow choosing the same file again
  if (file) classifyFile(file);
}

function onDrop(event) {
  event.preventDefault();
  ui.drop.classList.remove('over');
  const file = event.dataTransfer && event.dataTransfer.files[0];
  if (file) classifyFile(file);
}

function onDragOver(event) {
  event.preventDefault();
  ui.drop.classList.add('over');
}

export function setupDropZone() {
  const drop = ui.drop;
  drop.addEventListener('click', () => ui.file.click());
  drop.addEventListener('keydown', onKeyDown);
  ui.file.addEventListener('change', onFileChosen);
  drop.addEventListener('dragenter', onDragOver);
  drop.addEventListener('dragover', onDragOver);
  drop.addEventListener('dragleave', (event) => {
    if (!drop.contains(event.relatedTarget)) drop.classList.remove('over');
  });
  drop.addEventListener('drop', onDrop);
  // A file dropped next to the zone must not make the browser navigate away.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());
}

// ------------------------------------------------------------------ upload

function showFileMessage(text, isError = false) {
  ui.fileMessage.textContent = text;
  ui.fileMessage.classList.toggle('error', isError);
}

async function readBody(response) {
  const text = await response.text();
  try {
    return { json: JSON.parse(text), text };
  } catch (err) {
    return { json: null, text };
  }
}

async function postFile(file, signal) {
  const form = new FormData();
  form.append('file', file, file.name);
  const response = await fetch('/classify?spectrogram=1&windows=1', { method: 'POST', body: form, signal });
  const { json, text } = await readBody(response);
  if (!response.ok) {
    const detail = (json && json.error) || text.slice(0, 300) || response.statusText;
    showFileMessage(`Error (HTTP ${response.status}): ${detail}`, true);
  } else if (!json || typeof json !== 'object') {
    showFileMessage('Error: the server sent an unexpected response.', true);
  } else {
    showFileResult(json, file.name);
  }
}

async function classifyFile(file) {
  if (fileUpload) fileUpload.abort();
  const controller = new AbortController();
  fileUpload = controller;
  ui.drop.classList.add('busy');
  ui.fileDetails.hidden = true;
  showFileMessage(`Classifying ${file.name}…`);
  try {
    await postFile(file, controller.signal);
  } catch (err) {
    if (err.name !== 'AbortError') showFileMessage(`Upload failed: ${err.message || err}`, true);
  } finally {
    if (fileUpload === controller) {
      fileUpload = null;
      ui.drop.classList.remove('busy');
    }
  }
}

// ----------------------------------------------------------------- result

function decodeFileSpectrogram(spectrogram) {
  if (!spectrogram || typeof spectrogram !== 'object') return null;
  let bytes;
  try {
    bytes = decodeBase64(spectrogram.data);
  } catch (err) {
    return null;
  }
  const nMels = Number(spectrogram.n_mels);
  if (!Number.isInteger(nMels) || nMels <= 0) return null;
  const columns = Math.min(Number(spectrogram.columns) || Infinity, Math.floor(bytes.length / nMels));
  if (!columns) return null;
  return { bytes, nMels, columns, fps: Number(spectrogram.frames_per_second) || null };
}

function showFileResult(result, fallbackName) {
  fileView = {
    duration: isFiniteNumber(result.duration) ? result.duration : null,
    windows: Array.isArray(result.windows) ? result.windows.filter((w) => w && typeof w === 'object') : [],
    spectrogram: decodeFileSpectrogram(result.spectrogram),
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

function renderTopList(top) {
  ui.fileTop.replaceChildren();
  for (const entry of top) {
    if (!entry || typeof entry !== 'object') continue;
    const label = String(entry.label ?? '?');
    const name = labelName('span', 'score-label', label);
    ui.fileTop.append(scoreBar(element('li'), name, Number(entry.probability), labelColour(label)).row);
  }
  if (!ui.fileTop.children.length) ui.fileTop.append(element('li', 'empty', 'no scores'));
}

function windowRow(win) {
  const row = element('tr');
  row.append(
    element('td', '', fixed(Number(win.start))),
    element('td', '', fixed(Number(win.end))),
    labelName('td', '', String(win.label ?? '?')),
    element('td', '', fixed(Number(win.probability))),
  );
  return row;
}

function renderWindowsTable(windows) {
  const body = ui.windows.tBodies[0];
  body.replaceChildren(...windows.map(windowRow));
  if (!windows.length) {
    const cell = element('td', 'empty', 'no windows');
    cell.colSpan = 4;
    const row = element('tr');
    row.append(cell);
    body.append(row);
  }
}

// Redraw after a resize (the canvases' content is lost when they resize).
export function fitFileCanvases() {
  const fileResized = fitCanvas(ui.fileSpectrogram);
  const stripResized = fitCanvas(ui.fileStrip);
  if ((fileResized || stripResized) && fileView) drawFileResult();
}

function drawFileResult() {
  drawFileSpectrogram();
  drawWindowStrip();
}

// ------------------------------------------------------- file spectrogram

// Seconds covered by the drawing: the spectrogram's span when known.
function fileSpanSeconds() {
  const spec = fileView.spectrogram;
  if (spec && spec.fps) return spec.columns / spec.fps;
  if (fileView.duration) return fileView.duration;
  const ends = fileView.windows.map((w) => Number(w.end)).filter(isFiniteNumber);
  return ends.length ? Math.max(...ends) : 1;
}

// Per mel bin, the loudest level of spectrogram columns start..end-1.
function maxColumn(spec, start, end, column) {
  const { bytes, nMels } = spec;
  column.fill(0);
  for (let c = start; c < end; c++) {
    for (let b = 0; b < nMels; b++) column[b] = Math.max(column[b], bytes[c * nMels + b]);
  }
  return column;
}

// Whole file scaled to `width` pixel columns: each shows the max of the
// spectrogram columns it covers (or the nearest one when zoomed in); one
// image row per mel bin.
function fileSpectrogramImage(spec, width) {
  const { nMels, columns } = spec;
  const image = new ImageData(width, nMels);
  const column = new Uint8Array(nMels);
  for (let x = 0; x < width; x++) {
    const start = Math.min(columns - 1, Math.floor((x * columns) / width));
    const end = Math.max(start + 1, Math.min(columns, Math.floor(((x + 1) * columns) / width)));
    paintColumn(image, maxColumn(spec, start, end, column), x);
  }
  return image;
}

function drawNoSpectrogram(canvas, ctx) {
  ctx.fillStyle = '#8b93a7';
  ctx.font = `${Math.round(12 * pixelRatio())}px system-ui, sans-serif`;
  ctx.fillText('no spectrogram', 8, canvas.height / 2);
}

function drawFileSpectrogram() {
  const canvas = ui.fileSpectrogram;
  const ctx = canvas.getContext('2d');
  const spec = fileView.spectrogram;
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!spec) {
    drawNoSpectrogram(canvas, ctx);
    return;
  }
  // Paint at n_mels rows, then stretch vertically to the canvas height.
  const scratch = document.createElement('canvas');
  scratch.width = canvas.width;
  scratch.height = spec.nMels;
  scratch.getContext('2d').putImageData(fileSpectrogramImage(spec, canvas.width), 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}

// ------------------------------------------------------------ window strip

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

// One window as a box in its lane, named when the name fits.
function drawWindowBox(ctx, label, x, y, w, laneHeight) {
  const ratio = pixelRatio();
  ctx.fillStyle = labelColour(label, 0.85);
  ctx.fillRect(x, y + ratio, w, laneHeight - 2 * ratio);
  ctx.strokeStyle = STRIP_EDGE;
  ctx.lineWidth = ratio;
  ctx.strokeRect(x, y + ratio, w, laneHeight - 2 * ratio);
  if (ctx.measureText(label).width + 6 * ratio < w) {
    ctx.fillStyle = STRIP_EDGE;
    ctx.fillText(label, x + 3 * ratio, y + laneHeight / 2);
  }
}

function drawWindowStrip() {
  const canvas = ui.fileStrip;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const placed = assignLanes(fileView.windows);
  if (!placed.length) return;
  const laneHeight = canvas.height / Math.max(...placed.map((w) => w.lane + 1));
  const scale = canvas.width / fileSpanSeconds();
  ctx.font = `${Math.round(11 * pixelRatio())}px system-ui, sans-serif`;
  ctx.textBaseline = 'middle';
  for (const { win, start, end, lane } of placed) {
    const w = Math.max(1, (end - start) * scale);
    drawWindowBox(ctx, String(win.label ?? '?'), start * scale, lane * laneHeight, w, laneHeight);
  }
}
