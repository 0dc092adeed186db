// The live session: microphone -> ~40 ms Float32 blocks -> websocket /stream.
// The server answers every block with scores, detections and new log-mel
// spectrogram columns; the stream's messages are handled here.

import { pushWaveform, queueColumns, resetWaveform } from './drawing.js';
import {
  canOpenMicrophone, describeMicError, openAudioGraph, requestMicrophone, stopAudio,
} from './microphone.js';
import { addDetections, setLabels, showThreshold } from './scores.js';
import { earmark, markStatusDirty, setButton, setState, setStreamWarning, view } from './state.js';
import { isFiniteNumber } from './util.js';

const BLOCK_SECONDS = 0.04;          // network block length (~2048 samples at 48 kHz)
const STOP_GRACE_MS = 3000;          // wait this long for {"type":"end"} after stop
const BYTES_PER_SAMPLE = 4;          // format=f32
const MAX_BUFFERED_SECONDS = 1;      // drop blocks while more than this waits to be sent

let live = null;        // the running microphone/websocket session
let starting = false;   // true while getUserMedia / worklet setup is pending

export function onStartClick() {
  if (live) stopLive();
  else startLive();
}

// ------------------------------------------------------------------- start

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
  if (!canOpenMicrophone()) {
    failStart('This browser cannot open the microphone here (it needs https or http://localhost).');
    return;
  }
  setState('requesting microphone…');
  const audio = await openAudio();
  if (audio) beginSession(audio);
}

// The microphone's audio graph, or null (the failure is shown) when it cannot open.
async function openAudio() {
  let stream;
  try {
    stream = await requestMicrophone();
  } catch (err) {
    failStart(describeMicError(err));
    return null;
  }
  try {
    return await openAudioGraph(stream);
  } catch (err) {
    stream.getTracks().forEach((track) => track.stop());
    failStart(`Could not start audio processing: ${err.message || err}`);
    return null;
  }
}

function failStart(message) {
  setState(message, true);
  setButton('idle');
}

function newSession(audio) {
  const rate = audio.context.sampleRate;
  return {
    audio,
    rate,
    ws: null,
    ready: false,
    stopping: false,
    ended: false,
    failed: false,
    stopTimer: 0,
    block: new Float32Array(Math.max(1, Math.round(rate * BLOCK_SECONDS))),
    blockFill: 0,
  };
}

function beginSession(audio) {
  const session = newSession(audio);
  live = session;
  view.inputRate = session.rate;
  view.modelRate = null;
  view.nMels = null;
  setStreamWarning('');
  resetWaveform(session.rate);
  audio.node.port.onmessage = (event) => onSamples(session, event.data);
  // The stream can end on its own (device unplugged, permission revoked).
  audio.stream.getAudioTracks().forEach((track) => track.addEventListener('ended', () => {
    if (live === session && !session.stopping) stopLive('microphone ended');
  }));
  setButton('running');
  openSocket(session);
}

// ------------------------------------------------------------------ blocks

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
// Audio captured before the server's "ready" message is dropped, and so is a
// block while the socket still holds over a second of unsent audio.
function sendBlock(session, block) {
  const ws = session.ws;
  if (!session.ready || !ws || ws.readyState !== WebSocket.OPEN) return;
  if (ws.bufferedAmount > session.rate * BYTES_PER_SAMPLE * MAX_BUFFERED_SECONDS) {
    earmark.blocksDropped += 1;
  } else {
    ws.send(block.buffer);
    earmark.blocksSent += 1;
  }
  markStatusDirty();
}

// -------------------------------------------------------------------- stop

function stopLive(reason = 'stopping…') {
  const session = live;
  if (!session || session.stopping) return;
  // Send the partial block so the tail of the recording is not lost.
  if (session.blockFill > 0) sendBlock(session, session.block.slice(0, session.blockFill));
  session.blockFill = 0;
  session.stopping = true;
  stopAudio(session.audio);
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
  stopAudio(session.audio);
  if (live === session) {
    live = null;
    setButton('idle');
  }
}

// --------------------------------------------------------------- websocket

function streamUrl(rate) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/stream?rate=${encodeURIComponent(rate)}&format=f32`;
}

function openSocket(session) {
  let ws;
  try {
    ws = new WebSocket(streamUrl(session.rate));
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

function parseMessage(data) {
  if (typeof data !== 'string') return null; // the server only sends JSON text
  try {
    const message = JSON.parse(data);
    return message && typeof message === 'object' ? message : null;
  } catch (err) {
    return null;
  }
}

function onSocketMessage(session, event) {
  const message = parseMessage(event.data);
  if (!message) return;
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
  const nMels = (message.spectrogram || {}).n_mels;
  if (Number.isInteger(nMels) && nMels > 0) view.nMels = nMels;
  if (!session.stopping) setState('streaming');
}

function onResult(message) {
  earmark.resultsReceived += 1;
  if (isFiniteNumber(message.latency_ms)) earmark.latencyMs = message.latency_ms;
  markStatusDirty();
  const strides = Array.isArray(message.strides) ? message.strides : [];
  const last = strides[strides.length - 1];
  if (last && Array.isArray(last.scores)) {
    view.scores = last.scores.map(Number);
    view.scoresDirty = true;
  }
  addDetections(message.detections);
  try {
    queueColumns(message);
  } catch (err) {
    // A malformed spectrogram must not break scores and detections.
    setStreamWarning(`spectrogram skipped: ${err.message || err}`);
  }
}

function onServerError(session, message) {
  session.failed = true;
  setState(`error: ${message.error || 'unknown server error'}`, true);
  stopAudio(session.audio);
  if (live === session) setButton('stopping');
  // The server closes the connection next; close it ourselves if it does not.
  const ws = session.ws;
  clearTimeout(session.stopTimer);
  session.stopTimer = setTimeout(() => ws.close(), STOP_GRACE_MS);
}

// Detections flushed at stop come with the end message.
function onEnd(session, message) {
  session.ended = true;
  addDetections(message.detections);
  const audio = isFiniteNumber(message.audio_s) ? ` (${message.audio_s.toFixed(1)} s of audio)` : '';
  setState(`stopped${audio}`);
  finishSession(session); // ready for a new Start before the socket is fully closed
  session.ws.close(1000, 'done');
}

function closeText(event) {
  return `code ${event.code}${event.reason ? `: ${event.reason}` : ''}`;
}

function onSocketClose(session, event) {
  const wasLive = live === session;
  finishSession(session);
  if (!wasLive || session.failed || session.ended) return; // keep the message shown
  if (session.stopping) {
    setState('stopped');
  } else if (!session.ready) {
    setState(`could not connect to the stream (${closeText(event)})`, true);
  } else {
    setState(`disconnected (${closeText(event)})`, true);
  }
}
