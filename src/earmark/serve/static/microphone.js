// The microphone: getUserMedia, and the audio graph that carries it through
// the 'earmark-capture' AudioWorklet (worklet.js) to the main thread.

const WORKLET_CHUNK = 512;  // frames per worklet -> main thread message

const CONSTRAINTS = {
  audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
};

export function describeMicError(err) {
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

export function canOpenMicrophone() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

export function requestMicrophone() {
  return navigator.mediaDevices.getUserMedia(CONSTRAINTS);
}

function captureNode(context) {
  // channelCount 1 + 'explicit' makes the browser down-mix to mono.
  return new AudioWorkletNode(context, 'earmark-capture', {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    channelCount: 1,
    channelCountMode: 'explicit',
    channelInterpretation: 'speakers',
    processorOptions: { chunkSize: WORKLET_CHUNK },
  });
}

// {context, source, node, mute, stream, stopped}; node.port receives the
// worklet's Float32Array chunks.
export async function openAudioGraph(stream) {
  const context = new AudioContext(); // native rate; the server resamples
  try {
    await context.audioWorklet.addModule('/static/worklet.js');
    const source = context.createMediaStreamSource(stream);
    const node = captureNode(context);
    // Route through a silent gain to the destination so every browser keeps
    // pulling the node, without playing the microphone back.
    const mute = context.createGain();
    mute.gain.value = 0;
    source.connect(node);
    node.connect(mute);
    mute.connect(context.destination);
    await context.resume();
    return { context, source, node, mute, stream, stopped: false };
  } catch (err) {
    context.close().catch(() => {});
    throw err;
  }
}

export function stopAudio(audio) {
  if (audio.stopped) return;
  audio.stopped = true;
  audio.node.port.onmessage = null;
  for (const node of [audio.source, audio.node, audio.mute]) {
    try { node.disconnect(); } catch (err) { /* already disconnected */ }
  }
  audio.stream.getTracks().forEach((track) => track.stop());
  audio.context.close().catch(() => {});
}
