// Shared state: the record exposed as window.earmark, what the animation
// frame loop draws, the page's elements, the status line and the Start button.

import { byId, isFiniteNumber } from './util.js';

// Exposed as window.earmark for automated tests; mutated in place, never replaced.
export const earmark = {
  blocksSent: 0,
  blocksDropped: 0, // blocks not sent because the websocket was backed up
  resultsReceived: 0,
  columnsDrawn: 0,
  detections: [],   // {time, label, score}, oldest first
  labels: [],
  state: 'idle',    // text of the connection state shown in #status
  latencyMs: null,  // last server latency
};

// What the animation frame loop draws; handlers only set the dirty flags.
export const view = {
  nMels: null,          // spectrogram bins per column, from the "ready" message
  threshold: null,
  inputRate: null,
  modelRate: null,
  statusIsError: false,
  streamWarning: '',    // a problem with the stream's data, shown in the status line
  statusDirty: true,
  scores: null,
  scoresDirty: false,
  pendingColumns: [],   // Uint8Array per spectrogram column, not drawn yet
  wave: null,           // ring buffer of the last few seconds of samples
  waveWrite: 0,         // next write position == oldest sample
  waveDirty: true,
};

// DOM elements by role, filled in by collectElements().
export const ui = {};

const ELEMENT_IDS = {
  start: 'start',
  status: 'status',
  model: 'model',
  heard: 'heard',
  hear: 'hear',
  waveform: 'waveform',
  spectrogram: 'spectrogram',
  scores: 'scores',
  detections: 'detections',
  drop: 'drop',
  file: 'file',
  fileMessage: 'file-message',
  fileDetails: 'file-details',
  fileName: 'file-name',
  fileDuration: 'file-duration',
  fileLabel: 'file-label',
  fileTop: 'file-top',
  fileSpectrogram: 'file-spectrogram',
  fileStrip: 'file-windows-strip',
  windows: 'windows',
};

export function collectElements() {
  for (const [key, id] of Object.entries(ELEMENT_IDS)) ui[key] = byId(id);
}

// ------------------------------------------------------------- status line

export function markStatusDirty() {
  view.statusDirty = true;
}

export function setState(text, isError = false) {
  earmark.state = text;
  view.statusIsError = isError;
  view.statusDirty = true;
}

export function setStreamWarning(text) {
  view.streamWarning = text;
  view.statusDirty = true;
}

function ratesText() {
  const rates = `input ${Math.round(view.inputRate)} Hz`;
  return view.modelRate ? `${rates} → model ${view.modelRate} Hz` : rates;
}

export function renderStatus() {
  const parts = [earmark.state];
  if (view.inputRate) parts.push(ratesText());
  parts.push(`${earmark.blocksSent} blocks sent`);
  if (earmark.blocksDropped) parts.push(`${earmark.blocksDropped} dropped (network backed up)`);
  if (isFiniteNumber(earmark.latencyMs)) parts.push(`latency ${earmark.latencyMs.toFixed(1)} ms`);
  if (view.streamWarning) parts.push(view.streamWarning);
  ui.status.textContent = parts.join(' · ');
  ui.status.classList.toggle('error', view.statusIsError || Boolean(view.streamWarning));
}

// ------------------------------------------------------------ start button

const BUTTON_MODES = {
  idle: ['Start', false],
  starting: ['Starting…', true],
  running: ['Stop', false],
  stopping: ['Stopping…', true],
};

export function setButton(mode) {
  const [text, disabled] = BUTTON_MODES[mode];
  ui.start.textContent = text;
  ui.start.disabled = disabled;
  ui.start.classList.toggle('running', mode === 'running');
}
