// AudioWorklet processor for `earmark serve`: copies the microphone input
// (mono) into fixed-size Float32 chunks and posts them to the main thread.
//
// Render quanta are only 128 frames (~3 ms), so posting each one would mean
// hundreds of messages a second; batching into `chunkSize` frames (default
// 512, ~10 ms at 48 kHz) keeps the message rate low while the waveform still
// updates smoothly. The main thread regroups chunks into network blocks.

const DEFAULT_CHUNK_SIZE = 512;

class EarmarkCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const size = options && options.processorOptions && options.processorOptions.chunkSize;
    this.chunkSize = Number.isInteger(size) && size > 0 ? size : DEFAULT_CHUNK_SIZE;
    this.chunk = new Float32Array(this.chunkSize);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0];
    // No channels means the source is not (or no longer) producing audio.
    if (input && input.length > 0) {
      this.append(toMono(input));
    }
    return true; // keep the processor alive until the node is disconnected
  }

  append(samples) {
    let offset = 0;
    while (offset < samples.length) {
      const count = Math.min(samples.length - offset, this.chunkSize - this.filled);
      this.chunk.set(samples.subarray(offset, offset + count), this.filled);
      this.filled += count;
      offset += count;
      if (this.filled === this.chunkSize) {
        // Transfer the buffer (no copy) and start a fresh one.
        this.port.postMessage(this.chunk, [this.chunk.buffer]);
        this.chunk = new Float32Array(this.chunkSize);
        this.filled = 0;
      }
    }
  }
}

// The node is created with channelCount 1 / 'explicit', so the browser already
// down-mixes; averaging here is only a fallback if more channels arrive.
function toMono(channels) {
  if (channels.length === 1) {
    return channels[0];
  }
  const mono = new Float32Array(channels[0].length);
  for (const channel of channels) {
    for (let i = 0; i < mono.length; i++) {
      mono[i] += channel[i];
    }
  }
  for (let i = 0; i < mono.length; i++) {
    mono[i] /= channels.length;
  }
  return mono;
}

registerProcessor('earmark-capture', EarmarkCapture);
