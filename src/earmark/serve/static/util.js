// Small DOM, number and encoding helpers shared by the page's modules.

export function byId(id) {
  return document.getElementById(id);
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function isFiniteNumber(value) {
  return typeof value === 'number' && Number.isFinite(value);
}

export function fixed(value, digits = 2) {
  return isFiniteNumber(value) ? value.toFixed(digits) : '—';
}

export function clamp01(value) {
  return isFiniteNumber(value) ? Math.min(1, Math.max(0, value)) : 0;
}

export function clampUnit(value) {
  return Math.min(1, Math.max(-1, value));
}

export function firstString(...values) {
  return values.find((v) => typeof v === 'string' && v.length > 0);
}

export function pixelRatio() {
  return window.devicePixelRatio || 1;
}

// Throws (from atob) on text that is not base64.
export function decodeBase64(text) {
  if (typeof text !== 'string' || text.length === 0) return new Uint8Array(0);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
