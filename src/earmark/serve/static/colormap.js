// The spectrogram colour map, and the one routine that paints mel columns
// with it (used by the live spectrogram and the file spectrogram).

// Magma-like colour map, 8 anchors from dark to bright.
const MAGMA_ANCHORS = [
  [0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129],
  [181, 54, 122], [229, 80, 100], [251, 135, 97], [252, 253, 191],
];

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

const COLORMAP = buildColormap(MAGMA_ANCHORS, 256);

// CSS colour of a level (0..255).
export function levelCss(level) {
  const i = level * 3;
  return `rgb(${COLORMAP[i]}, ${COLORMAP[i + 1]}, ${COLORMAP[i + 2]})`;
}

// Paint one column of uint8 levels (low to high frequency) into `image` at
// x0 .. x0+columnWidth-1 over the image's full height: bin 0 at the bottom,
// bins stretched or squeezed to the image's rows.
export function paintColumn(image, column, x0, columnWidth = 1) {
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
