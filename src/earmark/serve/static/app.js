// earmark serve — live page (entry module).
//
// Microphone -> AudioWorklet ('earmark-capture', worklet.js) -> ~40 ms Float32
// blocks -> websocket /stream (live.js). The server answers every block with
// scores, detections and new log-mel spectrogram columns, drawn by the frame
// loop below (drawing.js, scores.js). A drop zone sends whole files to
// /classify (file_panel.js); a button plays the model's log-mel of the last
// seconds turned back into sound (/hear, hear.js). No dependencies, no build step.

import {
  clearSpectrogram, drawSpectrogramColumns, drawWaveform, fitLiveCanvases,
} from './drawing.js';
import { fitFileCanvases, setupDropZone } from './file_panel.js';
import { setupHearButton } from './hear.js';
import { onStartClick } from './live.js';
import { renderScores, setLabels } from './scores.js';
import { collectElements, earmark, renderStatus, setButton, ui, view } from './state.js';
import { isFiniteNumber } from './util.js';

window.earmark = earmark;

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

function summariseLabels(labels, shown = 10) {
  const head = labels.slice(0, shown).map(String).join(', ');
  return labels.length > shown ? `${head}, … (+${labels.length - shown} more)` : head;
}

// The parts of GET /model's answer worth a line: name, sample rate, labels,
// parameters and validation accuracy (when the bundle recorded them).
function modelSummary(info, labels) {
  const parts = [typeof info.name === 'string' && info.name ? info.name : 'model'];
  if (isFiniteNumber(info.sample_rate)) parts.push(`${info.sample_rate} Hz`);
  if (labels.length) parts.push(`${labels.length} labels: ${summariseLabels(labels)}`);
  if (isFiniteNumber(info.parameters)) parts.push(`${info.parameters.toLocaleString('en-US')} parameters`);
  const accuracy = info.metrics && info.metrics.validation_accuracy;
  if (isFiniteNumber(accuracy)) parts.push(`validation accuracy ${(accuracy * 100).toFixed(1)}%`);
  return parts.join(' · ');
}

function showModelInfo(info) {
  if (!info || typeof info !== 'object') {
    ui.model.textContent = 'model information unavailable';
    return;
  }
  const labels = Array.isArray(info.labels) ? info.labels : [];
  ui.model.textContent = modelSummary(info, labels);
  // The stream's "ready" message is authoritative; use these until then.
  if (labels.length && earmark.labels.length === 0) setLabels(labels);
}

// ---------------------------------------------------------- animation loop

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

// ------------------------------------------------------- canvases & resize

function fitAllCanvases() {
  fitLiveCanvases();
  fitFileCanvases();
}

function watchResizes() {
  if ('ResizeObserver' in window) {
    const observer = new ResizeObserver(fitAllCanvases);
    [ui.waveform, ui.spectrogram, ui.fileSpectrogram, ui.fileStrip].forEach((c) => observer.observe(c));
  }
  // Also catches devicePixelRatio changes (browser zoom, moving screens).
  window.addEventListener('resize', fitAllCanvases);
}

// -------------------------------------------------------------------- init

function init() {
  collectElements();
  ui.start.addEventListener('click', onStartClick);
  setupDropZone();
  setupHearButton();
  fitAllCanvases();
  clearSpectrogram();
  watchResizes();
  setButton('idle');
  loadModelInfo();
  requestAnimationFrame(frame);
}

// Module scripts run after parsing, so the DOM is normally ready already.
if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', init);
} else {
  init();
}
