// "Hear what the model hears": the last seconds of the microphone (the waveform's
// ring buffer) go to POST /hear, which turns the model's own log-mel of them back
// into sound (Griffin-Lim); the answer is played at once.

import { setStreamWarning, ui, view } from './state.js';

export function setupHearButton() {
  ui.hear.addEventListener('click', hearRecent);
}

async function hearRecent() {
  const samples = recentSamples();
  if (!samples) {
    setStreamWarning('hear: start the microphone first');
    return;
  }
  ui.hear.disabled = true;
  try {
    const response = await fetch('/hear?name=live.wav', {
      method: 'POST', body: wavBlob(samples, Math.round(view.inputRate)),
      headers: { 'Content-Type': 'audio/wav' },
    });
    if (!response.ok) throw new Error(await failure(response));
    const url = URL.createObjectURL(await response.blob());
    const player = new Audio(url);
    player.addEventListener('ended', () => URL.revokeObjectURL(url));
    setStreamWarning('');
    await player.play();
  } catch (err) {
    setStreamWarning(`hear: ${err.message || err}`);
  } finally {
    ui.hear.disabled = false;
  }
}

async function failure(response) {
  try {
    return (await response.json()).error || `HTTP ${response.status}`;
  } catch (err) {
    return `HTTP ${response.status}`;
  }
}

// The ring buffer oldest sample first, or null before any audio arrived.
function recentSamples() {
  const wave = view.wave;
  if (!wave || !view.inputRate) return null;
  const ordered = new Float32Array(wave.length);
  ordered.set(wave.subarray(view.waveWrite));
  ordered.set(wave.subarray(0, view.waveWrite), wave.length - view.waveWrite);
  return ordered;
}

// 16-bit PCM mono WAV.
function wavBlob(samples, rate) {
  const buffer = new ArrayBuffer(44 + 2 * samples.length);
  const data = new DataView(buffer);
  const text = (offset, value) => [...value].forEach((c, i) => data.setUint8(offset + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  data.setUint32(4, 36 + 2 * samples.length, true);
  text(8, 'WAVEfmt ');
  data.setUint32(16, 16, true);
  data.setUint16(20, 1, true);               // PCM
  data.setUint16(22, 1, true);               // mono
  data.setUint32(24, rate, true);
  data.setUint32(28, 2 * rate, true);        // bytes per second
  data.setUint16(32, 2, true);               // bytes per frame
  data.setUint16(34, 16, true);              // bits per sample
  text(36, 'data');
  data.setUint32(40, 2 * samples.length, true);
  samples.forEach((v, i) => data.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, v)) * 32767, true));
  return new Blob([buffer], { type: 'audio/wav' });
}
