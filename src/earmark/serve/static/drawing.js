// Live drawing: the waveform of the last seconds, the scrolling log-mel
// spectrogram, and sizing canvases to their CSS size.

import { levelCss, paintColumn } from './colormap.js';
import { earmark, setStreamWarning, ui, view } from './state.js';
import { clampUnit, decodeBase64, pixelRatio } from './util.js';

const WAVEFORM_SECONDS = 3;          // history shown by the waveform
const SPECTROGRAM_COLUMN_CSS_PX = 2; // width of one live spectrogram column

// Canvas colours (kept in step with style.css).
const WAVE_BACKGROUND = '#0b0d12';
const WAVE_AXIS = '#262b36';
const WAVE_COLOUR = '#7aa2f7';

// ---------------------------------------------------------------- canvases

// The backing-store size a canvas should have (CSS size times
// devicePixelRatio), or null if it is already right or hidden (zero-sized).
function wantedSize(canvas) {
  const ratio = pixelRatio();
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  if (width === 0 || height === 0) return null;
  if (canvas.width === width && canvas.height === height) return null;
  return { width, height };
}

// Returns true when the size changed (the content is then lost).
export function fitCanvas(canvas) {
  const size = wantedSize(canvas);
  if (!size) return false;
  canvas.width = size.width;
  canvas.height = size.height;
  return true;
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
  const ratio = pixelRatio();
  canvas.dataset.ratio = String(ratio);
  clearSpectrogram();
  const scaledWidth = (old.width * ratio) / oldRatio;
  canvas.getContext('2d').drawImage(old, canvas.width - scaledWidth, 0, scaledWidth, canvas.height);
}

export function fitLiveCanvases() {
  fitSpectrogramCanvas();
  if (fitCanvas(ui.waveform)) view.waveDirty = true;
}

// ---------------------------------------------------------------- waveform

export function resetWaveform(rate) {
  view.wave = new Float32Array(Math.max(1, Math.round(rate * WAVEFORM_SECONDS)));
  view.waveWrite = 0;
  view.waveDirty = true;
}

export function pushWaveform(samples) {
  const wave = view.wave;
  if (!wave) return;
  for (let i = 0; i < samples.length; i++) {
    wave[view.waveWrite] = samples[i];
    view.waveWrite = (view.waveWrite + 1) % wave.length;
  }
  view.waveDirty = true;
}

// [low, high] of the ring buffer's samples start..end-1, oldest first.
function envelope(wave, start, end) {
  let low = 1;
  let high = -1;
  for (let i = start; i < end; i++) {
    const v = wave[(view.waveWrite + i) % wave.length];
    if (v < low) low = v;
    if (v > high) high = v;
  }
  return [clampUnit(low), clampUnit(high)];
}

function clearWaveform(ctx, width, height) {
  ctx.fillStyle = WAVE_BACKGROUND;
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = WAVE_AXIS;
  ctx.fillRect(0, Math.floor(height / 2), width, 1);
}

// Min/max envelope of the ring buffer, one device pixel column at a time.
export function drawWaveform() {
  const ctx = ui.waveform.getContext('2d');
  const { width, height } = ui.waveform;
  clearWaveform(ctx, width, height);
  const wave = view.wave;
  if (!wave) return;
  const middle = height / 2;
  const amplitude = middle - 1;
  const count = wave.length;
  ctx.fillStyle = WAVE_COLOUR;
  for (let x = 0; x < width; x++) {
    const start = Math.floor((x * count) / width);
    const end = Math.max(start + 1, Math.floor(((x + 1) * count) / width));
    const [low, high] = envelope(wave, start, end);
    const top = middle - high * amplitude;
    ctx.fillRect(x, top, 1, Math.max(1, middle - low * amplitude - top));
  }
}

// ------------------------------------------------------- live spectrogram

function columnWidthPx() {
  return Math.max(1, Math.round(SPECTROGRAM_COLUMN_CSS_PX * pixelRatio()));
}

// The columns of a "result" message: `columns` x n_mels uint8 levels (n_mels
// from the "ready" message). A message whose data does not match is skipped
// with a warning in the status line.
export function queueColumns(message) {
  const columns = Number(message.columns) || 0;
  const bytes = decodeBase64(message.spectrogram);
  if (columns === 0 && bytes.length === 0) return;
  const nMels = view.nMels;
  if (!nMels) {
    setStreamWarning('spectrogram skipped: the stream did not say its n_mels');
    return;
  }
  if (bytes.length !== columns * nMels) {
    setStreamWarning(`spectrogram skipped: ${bytes.length} bytes for ${columns} columns × ${nMels} mels`);
    return;
  }
  for (let c = 0; c < columns; c++) {
    view.pendingColumns.push(bytes.subarray(c * nMels, (c + 1) * nMels));
  }
  trimPendingColumns();
}

// If frames are not being drawn (hidden tab), keep only what fits on the
// canvas; the rest would scroll off anyway, so it counts as drawn.
function trimPendingColumns() {
  const keep = Math.ceil(ui.spectrogram.width / columnWidthPx()) + 1;
  const excess = view.pendingColumns.length - keep;
  if (excess > 0) {
    view.pendingColumns.splice(0, excess);
    earmark.columnsDrawn += excess;
  }
}

// Scroll the canvas left by the new columns' width, then paint them at the
// right edge.
export function drawSpectrogramColumns() {
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

export function clearSpectrogram() {
  const canvas = ui.spectrogram;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = levelCss(0);
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}
