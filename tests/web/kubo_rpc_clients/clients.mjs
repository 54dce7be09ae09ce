// The real kubo RPC clients against one server, for tests/web/test_kubo_rpc_clients.py:
// ipfs-api 22 (what the original ETDB-downloads CLI uses) and kubo-rpc-client.
//
//   node clients.mjs API_URL SECONDS OPS_JSON
//
// OPS_JSON is a list of {client, op, ...}; one JSON line per op on stdout:
// {"ok": true, "result": ...} or {"ok": false, "error": message, "code": kubo's Code or null}.
// Bytes are reported as {length, sha256} (and base64 when asked), never trusted by the test
// beyond comparison with the files on disk. Exit 0 when every op ran (failures included: a
// test may expect one), 124 when the watchdog fired (a hung call must never hang the suite).
//
// ops:
//   ipfs-api  get {path}                      files.get: [{path, length, sha256}] (dirs: no bytes)
//   ipfs-api  etdb-downloads {location, files: [{fname, dname}], dest}
//             ETDB-downloads' own calls: files.getReadableStream(location + '/' + fname), each
//             entry's content piped to DEST/dname; then its ipfsLsRecursive('/ipfs/' + location)
//             over ls: {written: [dname...], listed: [{path, hash, type, size}]}
//   ipfs-api  cat {path, offset?, length?}    files.cat with kubo's offset/length options
//   ipfs-api  ls {path}                       [{name, path, size, hash, type}]
//   ipfs-api  version
//   kubo-rpc-client  get {path, base64?}      the tar stream: {length, sha256, base64?}
//   kubo-rpc-client  cat {path, offset?, length?}
//   kubo-rpc-client  ls {path}                [{name, path, size, cid, type}]
//   kubo-rpc-client  version

import { createHash } from 'node:crypto'
import { createWriteStream, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { Writable } from 'node:stream'
import ipfsAPI from 'ipfs-api'
import { create } from 'kubo-rpc-client'

const [api, seconds, opsJson] = process.argv.slice(2)
if (api == null || seconds == null || opsJson == null) {
  console.error('usage: node clients.mjs API_URL SECONDS OPS_JSON')
  process.exit(2)
}
const watchdog = setTimeout(() => {
  console.error(`watchdog: no result after ${seconds} s`)
  process.exit(124)
}, Number(seconds) * 1000)

const url = new URL(api)
// ETDB-downloads: new IPFSApi({host, port, protocol})
const legacy = ipfsAPI({ host: url.hostname, port: url.port, protocol: url.protocol.replace(':', '') })
const kubo = create({ url: new URL('/api/v0', api) })

function digest (bytes) {
  // concat-stream (inside ipfs-api) gives [] rather than an empty Buffer for an empty file
  const buffer = Array.isArray(bytes) ? Buffer.concat(bytes) : bytes
  return { length: buffer.length, sha256: createHash('sha256').update(buffer).digest('hex') }
}

async function collect (iterable) {
  const chunks = []
  for await (const chunk of iterable) chunks.push(chunk)
  return Buffer.concat(chunks)
}

function catOptions (op) {
  const opts = {}
  if (op.offset != null) opts.offset = op.offset
  if (op.length != null) opts.length = op.length
  return opts
}

// ETDB-downloads' download of one file: the readable stream's 'data' objects are {path,
// content}; each content stream is piped into a write stream of the file.
function downloadOne (location, fname, dname, dest) {
  return new Promise((resolve, reject) => {
    const readStream = legacy.files.getReadableStream(location + '/' + fname)
    const filePath = join(dest, dname)
    mkdirSync(dirname(filePath), { recursive: true })
    readStream
      .on('error', reject)
      .pipe(new Writable({
        objectMode: true,
        write (data, enc, next) {
          if (!data.content) { next(); return }
          data.content
            .on('error', reject)
            .pipe(createWriteStream(filePath))
            .on('finish', () => { resolve(dname); next() })
            .on('error', reject)
        }
      }))
  })
}

// ETDB-downloads' ipfsLsRecursive: ls, then ls again each entry of type 'dir' by its path.
async function lsRecursive (ipfsPath) {
  const entries = await legacy.ls(ipfsPath)
  const out = [...entries]
  for (const entry of entries.filter((e) => e.type === 'dir')) {
    out.push(...await lsRecursive(entry.path))
  }
  return out
}

const OPS = {
  'ipfs-api': {
    async get (op) {
      const files = await legacy.files.get(op.path)
      return files.map((f) => f.content == null ? { path: f.path } : { path: f.path, ...digest(f.content) })
    },
    async 'etdb-downloads' (op) {
      const written = []
      for (const f of op.files) written.push(await downloadOne(op.location, f.fname, f.dname, op.dest))
      const listed = await lsRecursive('/ipfs/' + op.location)
      return { written, listed: listed.map((e) => ({ path: e.path, hash: e.hash, type: e.type, size: e.size })) }
    },
    async cat (op) {
      return digest(await legacy.files.cat(op.path, catOptions(op)))
    },
    async ls (op) {
      return (await legacy.ls(op.path)).map((e) => ({ name: e.name, path: e.path, size: e.size, hash: e.hash, type: e.type }))
    },
    async version () {
      return await legacy.version()
    }
  },
  'kubo-rpc-client': {
    async get (op) {
      const tar = await collect(kubo.get(op.path))
      return { ...digest(tar), ...(op.base64 ? { base64: tar.toString('base64') } : {}) }
    },
    async cat (op) {
      return digest(await collect(kubo.cat(op.path, catOptions(op))))
    },
    async ls (op) {
      const out = []
      for await (const e of kubo.ls(op.path)) {
        out.push({ name: e.name, path: e.path, size: e.size, cid: e.cid.toString(), type: e.type })
      }
      return out
    },
    async version () {
      return await kubo.version()
    }
  }
}

for (const op of JSON.parse(opsJson)) {
  let line
  try {
    const run = OPS[op.client]?.[op.op]
    if (run == null) throw new Error(`unknown op ${op.client} ${op.op}`)
    line = { ok: true, result: await run(op) }
  } catch (err) {
    line = { ok: false, error: String(err?.message ?? err).slice(0, 800), code: err?.code ?? null }
  }
  // a callback: the line is flushed before the next op (and before exit, which cuts a pipe)
  await new Promise((resolve) => process.stdout.write(JSON.stringify(line) + '\n', resolve))
}
clearTimeout(watchdog)
process.exit(0)
