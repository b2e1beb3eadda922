// Building the page from text, never from HTML strings.
//
// Every element comes from document.createElement and every piece of data reaches the page
// as a text node (Node.append with a string, or textContent). The page's CSP requires
// Trusted Types with no policy, so an HTML string given to innerHTML would throw anyway:
// these helpers are the only way in.

const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction']);

// h('a', {href: '#/jobs', class: 'x', onclick: fn}, 'text', child, ...)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'style') throw new Error('style attributes are refused by the page CSP; use a class');
    else {
      if (URL_ATTRS.has(key)) checkURL(value);
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

// Only our own URLs: this origin's paths, fragments and blob: downloads.
export function checkURL(value) {
  const text = String(value);
  if (/^(\/(?!\/)|#|blob:)/.test(text)) return text;
  throw new Error(`refused URL ${JSON.stringify(text)}`);
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// Replace an element's children.
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = value;
    else if (key === 'style' || key.startsWith('on') || key === 'href') throw new Error(`refused SVG attribute ${key}`);
    else el.setAttribute(key, String(value));
  }
  return append(el, children);
}
