// Reading the job's own artifact (zip, else tar.gz) in the browser, to show its files.
//
// The job document lists files by path, size and hash; their text is in the artifacts.
// Zip entries are stored or deflated, tar.gz is gzip: both inflate with the browser's
// DecompressionStream, so no library is needed.

const MAX_SHOWN = 512 * 1024; // larger files are listed, not shown

async function inflate(bytes, format) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const text = new TextDecoder('utf-8');

export async function readZip(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive');
  const count = view.getUint16(eocd + 10, true);
  let p = view.getUint32(eocd + 16, true);
  const files = [];
  for (let n = 0; n < count; n++) {
    if (view.getUint32(p, true) !== 0x02014b50) throw new Error('a broken zip directory');
    const method = view.getUint16(p + 10, true);
    const compressed = view.getUint32(p + 20, true);
    const size = view.getUint32(p + 24, true);
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    const local = view.getUint32(p + 42, true);
    const name = text.decode(bytes.subarray(p + 46, p + 46 + nameLength));
    p += 46 + nameLength + extraLength + commentLength;
    if (name.endsWith('/')) continue;
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const data = bytes.subarray(start, start + compressed);
    let content = null;
    if (size <= MAX_SHOWN) {
      if (method === 0) content = data;
      else if (method === 8) content = await inflate(data, 'deflate-raw');
    }
    files.push({path: name, size, content});
  }
  return files;
}

export async function readTarGz(buffer) {
  const bytes = await inflate(new Uint8Array(buffer), 'gzip');
  const files = [];
  const field = (at, length) => text.decode(bytes.subarray(at, at + length)).replace(/\0.*$/s, '');
  let p = 0;
  let longName = null;
  while (p + 512 <= bytes.length) {
    const name = field(p, 100);
    if (!name) break;
    const size = parseInt(field(p + 124, 12).trim() || '0', 8);
    const type = String.fromCharCode(bytes[p + 156] || 48);
    const prefix = field(p + 345, 155);
    const data = bytes.subarray(p + 512, p + 512 + size);
    p += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      const m = /\d+ path=([^\n]*)\n/.exec(text.decode(data));
      longName = m ? m[1] : null;
      continue;
    }
    if (type === 'L') {
      longName = text.decode(data).replace(/\0.*$/s, '');
      continue;
    }
    const path = longName || (prefix ? `${prefix}/${name}` : name);
    longName = null;
    if (type !== '0' && type !== '\0') continue;
    files.push({path, size, content: size <= MAX_SHOWN ? data : null});
  }
  return files;
}

// [{path, size, text|null}] with the archive's top directory (the job id) taken off.
export async function filesOf(buffer, format) {
  const files = format === 'zip' ? await readZip(buffer) : await readTarGz(buffer);
  const tops = new Set(files.map((f) => (f.path.includes('/') ? f.path.split('/')[0] : '')));
  const strip = tops.size === 1 && !tops.has('');
  return files.map((f) => ({
    path: strip ? f.path.slice(f.path.indexOf('/') + 1) : f.path,
    size: f.size,
    text: f.content === null ? null : text.decode(f.content),
  }));
}
