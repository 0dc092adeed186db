// Labels and scores: label colours and swatches, score bars (live and file),
// and the detection log.

import { earmark, ui, view } from './state.js';
import { clamp01, element, fixed, isFiniteNumber } from './util.js';

const LOG_LIMIT = 50;          // entries kept in the detection list
const DETECTIONS_KEPT = 1000;  // entries kept in window.earmark.detections
const HEARD_MS = 1000;         // how long a detected label is flashed

let scoreRows = [];            // {row, fill, value} per label
let heardTimer = 0;

// ------------------------------------------------------------------ labels

// Distinct, stable colour per label: golden-angle hue steps over label index.
export function labelColour(label, alpha = 1) {
  let index = earmark.labels.indexOf(label);
  if (index < 0) {
    index = 0;
    for (const ch of String(label)) index = (index * 31 + ch.charCodeAt(0)) >>> 0;
  }
  const hue = (index * 137.508) % 360;
  return `hsla(${hue.toFixed(1)}, 65%, 58%, ${alpha})`;
}

// A <tag> holding the label's colour swatch and its name.
export function labelName(tag, className, label) {
  const node = element(tag, className);
  const swatch = element('span', 'swatch');
  swatch.style.background = labelColour(label);
  node.append(swatch, label);
  return node;
}

// Append name, a bar filled to `fraction` (0..1) and its value to `row`.
export function scoreBar(row, name, fraction, colour) {
  const track = element('div', 'score-track');
  const fill = element('div', 'score-fill');
  const value = element('span', 'score-value', fixed(fraction));
  fill.style.width = `${clamp01(fraction) * 100}%`;
  if (colour) fill.style.background = colour;
  track.append(fill);
  row.append(name, track, value);
  return { row, fill, value };
}

export function setLabels(labels) {
  earmark.labels.splice(0, earmark.labels.length, ...labels.map(String));
  buildScoreRows();
}

// -------------------------------------------------------------- live scores

function buildScoreRows() {
  ui.scores.replaceChildren();
  scoreRows = earmark.labels.map((label) => {
    const row = element('div', 'score-row');
    row.title = label;
    ui.scores.append(row);
    return scoreBar(row, element('span', 'score-label', label));
  });
  if (scoreRows.length === 0) ui.scores.append(element('p', 'empty', 'no labels yet'));
  showThreshold();
}

export function showThreshold() {
  const percent = isFiniteNumber(view.threshold) ? `${clamp01(view.threshold) * 100}%` : '-10%';
  ui.scores.style.setProperty('--threshold', percent);
}

// More scores than known labels: name the extra ones by index.
function nameExtraScores(count) {
  const extra = [];
  for (let i = earmark.labels.length; i < count; i++) extra.push(`#${i}`);
  if (extra.length) setLabels(earmark.labels.concat(extra));
}

function topIndex(scores) {
  let top = -1;
  scores.forEach((score, i) => {
    if (isFiniteNumber(score) && (top < 0 || score > scores[top])) top = i;
  });
  return top;
}

export function renderScores() {
  const scores = view.scores;
  if (!scores) return;
  nameExtraScores(scores.length);
  const top = topIndex(scores);
  scoreRows.forEach((entry, i) => {
    entry.fill.style.width = `${clamp01(scores[i]) * 100}%`;
    entry.value.textContent = fixed(scores[i]);
    entry.row.classList.toggle('top', i === top);
  });
}

// ----------------------------------------------------------- detection log

export function addDetections(detections) {
  if (Array.isArray(detections)) detections.forEach(addDetection);
}

function addDetection(detection) {
  if (!detection || typeof detection !== 'object') return;
  const time = Number(detection.time);
  const score = Number(detection.score);
  const label = String(detection.label ?? '?');
  earmark.detections.push({ time, label, score });
  if (earmark.detections.length > DETECTIONS_KEPT) earmark.detections.shift();
  logDetection(time, label, score);
  flashHeard(label);
}

function logDetection(time, label, score) {
  const item = element('li');
  item.append(
    element('span', 'time', `${fixed(time)} s`), ' ',
    element('span', 'label', label), ' ',
    element('span', 'score', fixed(score)),
  );
  ui.detections.prepend(item);
  while (ui.detections.children.length > LOG_LIMIT) ui.detections.lastElementChild.remove();
}

function flashHeard(label) {
  ui.heard.textContent = label;
  ui.heard.classList.add('flash');
  clearTimeout(heardTimer);
  heardTimer = setTimeout(() => ui.heard.classList.remove('flash'), HEARD_MS);
}
