// A small syntax highlighter that builds DOM nodes from text.
//
// Why our own and not a vendored library: highlight.js and its peers return HTML strings
// that are written with innerHTML (escaped, but still an HTML sink), and the page's CSP
// requires Trusted Types with no policy, which makes the browser refuse every such sink.
// A tokenizer that emits <span class="tok-..."> elements holding text nodes keeps that
// guarantee; for the languages Atomic runs, comments, strings, numbers, keywords, literals,
// types and calls are what a reader needs, in about 250 lines.

import {h} from './dom.js';

const words = (text) => new Set(text.split(/\s+/).filter(Boolean));

const C_KEYWORDS = 'auto break case const continue default do else enum extern for goto if inline ' +
  'register restrict return sizeof static struct switch typedef union volatile while _Static_assert';
const C_TYPES = 'char double float int long short signed unsigned void bool _Bool size_t ssize_t ' +
  'int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t FILE';
const CPP_EXTRA = 'class namespace template typename public private protected virtual override final new ' +
  'delete this using try catch throw operator friend explicit constexpr consteval noexcept decltype ' +
  'static_cast dynamic_cast reinterpret_cast const_cast mutable concept requires co_await co_return co_yield';

const SPECS = {
  python: {
    comments: [{open: '#'}],
    strings: [
      {open: '"""', close: '"""', multiline: true, escape: true},
      {open: "'''", close: "'''", multiline: true, escape: true},
      {open: '"', close: '"', escape: true},
      {open: "'", close: "'", escape: true},
    ],
    keywords: words('and as assert async await break class continue def del elif else except finally for ' +
      'from global if import in is lambda nonlocal not or pass raise return try while with yield match case'),
    literals: words('True False None'),
    types: words('int float str bytes bool list dict set tuple object type range Exception ValueError ' +
      'TypeError KeyError IndexError RuntimeError'),
    builtins: words('print len input open enumerate zip map filter sorted sum min max abs isinstance super ' +
      'iter next reversed round repr'),
    extra: [[/@[A-Za-z_][\w.]*/y, 'meta']],
  },
  shell: {
    comments: [{open: '#', wordStart: true}],
    strings: [
      {open: '"', close: '"', multiline: true, escape: true},
      {open: "'", close: "'", multiline: true},
    ],
    keywords: words('if then else elif fi for while until do done case esac in function return exit ' +
      'local export readonly shift break continue set unset'),
    literals: words('true false'),
    types: new Set(),
    builtins: words('echo printf read cd test source eval exec trap wait seq expr cat grep sed awk'),
    extra: [[/\$\{[^}\n]*\}|\$\(\(|\$[A-Za-z_][\w]*|\$[0-9#?@*$!-]/y, 'variable']],
  },
  c: {
    comments: [{open: '//'}, {open: '/*', close: '*/'}],
    strings: [{open: '"', close: '"', escape: true}, {open: "'", close: "'", escape: true}],
    keywords: words(C_KEYWORDS),
    literals: words('NULL true false EOF stdin stdout stderr'),
    types: words(C_TYPES),
    builtins: words('printf scanf puts malloc free calloc realloc strlen strcmp memcpy memset fgets fprintf'),
    extra: [[/#[ \t]*[a-z]+/y, 'meta']],
  },
  cpp: {
    comments: [{open: '//'}, {open: '/*', close: '*/'}],
    strings: [{open: '"', close: '"', escape: true}, {open: "'", close: "'", escape: true}],
    keywords: words(`${C_KEYWORDS} ${CPP_EXTRA}`),
    literals: words('nullptr NULL true false'),
    types: words(`${C_TYPES} std string vector map unordered_map set pair array size_t auto`),
    builtins: words('cout cin cerr endl printf'),
    extra: [[/#[ \t]*[a-z]+/y, 'meta']],
  },
  javascript: {
    comments: [{open: '//'}, {open: '/*', close: '*/'}],
    strings: [
      {open: '"', close: '"', escape: true},
      {open: "'", close: "'", escape: true},
      {open: '`', close: '`', multiline: true, escape: true},
    ],
    keywords: words('break case catch class const continue debugger default delete do else export extends ' +
      'finally for function if import in instanceof let new return super switch this throw try typeof var ' +
      'void while with yield async await of static get set'),
    literals: words('true false null undefined NaN Infinity'),
    types: words('Object Array String Number Boolean Promise Map Set Error JSON Math'),
    builtins: words('console process require module'),
    extra: [],
  },
  go: {
    comments: [{open: '//'}, {open: '/*', close: '*/'}],
    strings: [
      {open: '"', close: '"', escape: true},
      {open: '`', close: '`', multiline: true},
      {open: "'", close: "'", escape: true},
    ],
    keywords: words('break case chan const continue default defer else fallthrough for func go goto if ' +
      'import interface map package range return select struct switch type var'),
    literals: words('true false nil iota'),
    types: words('int int8 int16 int32 int64 uint uint8 uint16 uint32 uint64 uintptr float32 float64 ' +
      'complex64 complex128 string bool byte rune error any'),
    builtins: words('append cap close copy delete len make new panic print println recover fmt'),
    extra: [],
  },
  rust: {
    comments: [{open: '//'}, {open: '/*', close: '*/'}],
    strings: [{open: '"', close: '"', multiline: true, escape: true}],
    keywords: words('as async await break const continue crate dyn else enum extern fn for if impl in let ' +
      'loop match mod move mut pub ref return self Self static struct super trait type unsafe use where while'),
    literals: words('true false None Some Ok Err'),
    types: words('i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str String Vec ' +
      'Option Result Box HashMap'),
    builtins: new Set(),
    extra: [
      [/'(?:\\.|[^\\'\n])'/y, 'string'],
      [/'[A-Za-z_]\w*/y, 'type'],
      [/[A-Za-z_]\w*!/y, 'builtin'],
      [/#!?\[[^\]\n]*\]/y, 'meta'],
    ],
  },
  java: {
    comments: [{open: '//'}, {open: '/*', close: '*/'}],
    strings: [
      {open: '"""', close: '"""', multiline: true, escape: true},
      {open: '"', close: '"', escape: true},
      {open: "'", close: "'", escape: true},
    ],
    keywords: words('abstract assert break case catch class continue default do else enum extends final ' +
      'finally for if implements import instanceof interface native new package private protected public ' +
      'return static strictfp super switch synchronized this throw throws transient try volatile while var ' +
      'record yield'),
    literals: words('true false null'),
    types: words('boolean byte char double float int long short void String Integer Long Double Boolean ' +
      'Object List Map ArrayList HashMap Scanner StringBuilder'),
    builtins: words('System Math'),
    extra: [[/@[A-Za-z_]\w*/y, 'meta']],
  },
  json: {
    comments: [],
    strings: [{open: '"', close: '"', escape: true}],
    keywords: new Set(),
    literals: words('true false null'),
    types: new Set(),
    builtins: new Set(),
    extra: [],
  },
};

const ALIASES = {
  py: 'python', python3: 'python', sh: 'shell', bash: 'shell', zsh: 'shell', h: 'c', 'c++': 'cpp',
  cc: 'cpp', cxx: 'cpp', hpp: 'cpp', hh: 'cpp', js: 'javascript', mjs: 'javascript', node: 'javascript',
  golang: 'go', rs: 'rust',
};

// The highlighter's name for a language, a fence's info string or a file name; null: plain.
export function languageOf(name) {
  if (!name) return null;
  let word = String(name).trim().split(/\s+/)[0].toLowerCase();
  const dot = word.lastIndexOf('.');
  if (dot >= 0) word = word.slice(dot + 1);
  word = ALIASES[word] || word;
  return SPECS[word] ? word : null;
}

const NUMBER = /(?:0[xX][\da-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)[a-zA-Z]*/y;
const IDENT = /[A-Za-z_$][\w$]*/y;
const IDENT_CHAR = /[\w$]/;

// [[type, text], ...] with type null for plain text; joined, the texts are `code` exactly.
export function tokenize(code, language) {
  const spec = SPECS[language];
  if (!spec) return [[null, code]];
  const out = [];
  let plain = '';
  const push = (type, text) => {
    if (plain) out.push([null, plain]);
    plain = '';
    out.push([type, text]);
  };
  const n = code.length;
  let i = 0;
  outer: while (i < n) {
    const ch = code[i];
    for (const c of spec.comments) {
      if (!code.startsWith(c.open, i)) continue;
      if (c.wordStart && i > 0 && !/\s/.test(code[i - 1])) continue;
      let end;
      if (c.close) {
        end = code.indexOf(c.close, i + c.open.length);
        end = end < 0 ? n : end + c.close.length;
      } else {
        end = code.indexOf('\n', i);
        if (end < 0) end = n;
      }
      push('comment', code.slice(i, end));
      i = end;
      continue outer;
    }
    for (const [re, type] of spec.extra) {
      re.lastIndex = i;
      const m = re.exec(code);
      if (m && m[0]) {
        push(type, m[0]);
        i += m[0].length;
        continue outer;
      }
    }
    for (const s of spec.strings) {
      if (!code.startsWith(s.open, i)) continue;
      let j = i + s.open.length;
      while (j < n) {
        if (s.escape && code[j] === '\\') j += 2;
        else if (code.startsWith(s.close, j)) {
          j += s.close.length;
          break;
        } else if (!s.multiline && code[j] === '\n') break;
        else j += 1;
      }
      j = Math.min(j, n);
      push('string', code.slice(i, j));
      i = j;
      continue outer;
    }
    const prevIdent = i > 0 && IDENT_CHAR.test(code[i - 1]);
    if (!prevIdent && /[\d.]/.test(ch)) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(code);
      if (m && m[0] && m[0] !== '.' && /\d/.test(m[0])) {
        push('number', m[0]);
        i += m[0].length;
        continue;
      }
    }
    if (!prevIdent) {
      IDENT.lastIndex = i;
      const m = IDENT.exec(code);
      if (m) {
        const word = m[0];
        let type = null;
        if (spec.keywords.has(word)) type = 'keyword';
        else if (spec.literals.has(word)) type = 'literal';
        else if (spec.types.has(word)) type = 'type';
        else if (spec.builtins.has(word)) type = 'builtin';
        else if (code[i + word.length] === '(') type = 'call';
        if (type) push(type, word);
        else plain += word;
        i += word.length;
        continue;
      }
    }
    plain += ch;
    i += 1;
  }
  if (plain) out.push([null, plain]);
  return out;
}

// A fragment of text nodes and <span class="tok-TYPE"> elements.
export function highlight(code, language) {
  const frag = document.createDocumentFragment();
  for (const [type, text] of tokenize(code, language)) {
    frag.append(type ? h('span', {class: `tok-${type}`}, text) : text);
  }
  return frag;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^`\n]*?)[ \t]*$/;

// A model's answer: prose as it is, each fenced block highlighted in its own language
// (an unclosed block, while tokens still stream in, too).
export function highlightAnswer(text, fallbackLanguage) {
  const frag = document.createDocumentFragment();
  let prose = '';
  let fence = null;
  let code = '';
  const flushProse = () => {
    if (prose) frag.append(h('span', {class: 'tok-prose'}, prose));
    prose = '';
  };
  for (const line of text.split(/(?<=\n)/)) {
    const bare = line.replace(/\n$/, '');
    const m = FENCE.exec(bare);
    if (!fence) {
      if (m) {
        flushProse();
        frag.append(h('span', {class: 'tok-fence'}, line));
        fence = {ticks: m[1], language: languageOf(m[2]) || (m[2] ? null : fallbackLanguage)};
        code = '';
      } else {
        prose += line;
      }
    } else if (m && !m[2] && m[1][0] === fence.ticks[0] && m[1].length >= fence.ticks.length) {
      frag.append(highlight(code, fence.language));
      frag.append(h('span', {class: 'tok-fence'}, line));
      fence = null;
    } else {
      code += line;
    }
  }
  if (fence) frag.append(highlight(code, fence.language));
  flushProse();
  return frag;
}
