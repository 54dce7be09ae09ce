// Reference CIDs from the JS UnixFS importer (ipfs-unixfs-importer), for etdb's parity tests.
//
// Reads a JSON array of jobs on stdin: {path, preset, hidden?, chunkSize?, maxChildrenPerNode?,
// shardSplitThresholdBytes?, shardFanoutBits?};
// writes a JSON array of {cid, size} (size = the root's cumulative Tsize) on stdout.
// It walks the tree itself (as `ipfs add -r`): names starting with "." are skipped unless
// `hidden`, an empty folder is yielded as {path} with no content, symlinks are refused (kubo
// keeps them as Symlink nodes, which this walker cannot express). Blocks go to a black hole.
//
// Presets (ipfs.md §2, each checked against kubo):
//   kubo-v0: `ipfs add` (kubo default, CIDv0, dag-pb leaves, 256 KiB chunks, 174 links)
//   kubo-v1: `ipfs add --cid-version=1` (raw leaves, otherwise unchanged)
//   unixfs-v1-2025: the importer's own IPIP-0499 profile (1 MiB chunks, 1024 links, block-bytes)
import { createReadStream, promises as fs } from 'node:fs'
import path from 'node:path'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { BlackHoleBlockstore } from 'blockstore-core/black-hole'

function options (job) {
  let opts
  switch (job.preset) {
    case 'kubo-v0':
      opts = { cidVersion: 0, rawLeaves: false, reduceSingleLeafToSelf: true, chunker: fixedSize({ chunkSize: 262144 }), layout: balanced({ maxChildrenPerNode: 174 }), shardSplitThresholdBytes: 262144, wrapWithDirectory: false }
      break
    case 'kubo-v1':
      opts = { cidVersion: 1, rawLeaves: true, reduceSingleLeafToSelf: true, chunker: fixedSize({ chunkSize: 262144 }), layout: balanced({ maxChildrenPerNode: 174 }), shardSplitThresholdBytes: 262144, wrapWithDirectory: false }
      break
    case 'unixfs-v1-2025':
      opts = { profile: 'unixfs-v1-2025', wrapWithDirectory: false }
      break
    default:
      throw new Error(`unknown preset ${job.preset}`)
  }
  // Overrides, to test unusual shapes cheaply (tiny chunks, narrow nodes, small fanouts).
  if (job.chunkSize != null) opts.chunker = fixedSize({ chunkSize: job.chunkSize })
  if (job.maxChildrenPerNode != null) opts.layout = balanced({ maxChildrenPerNode: job.maxChildrenPerNode })
  if (job.shardSplitThresholdBytes != null) opts.shardSplitThresholdBytes = job.shardSplitThresholdBytes
  if (job.shardFanoutBits != null) opts.shardFanoutBits = job.shardFanoutBits
  return opts
}

async function * walk (abs, rel, hidden) {
  const st = await fs.lstat(abs)
  if (st.isSymbolicLink()) throw new Error(`symlinks are not supported: ${abs}`)
  if (st.isFile()) {
    yield { path: rel, content: createReadStream(abs, { highWaterMark: 262144 }) }
    return
  }
  if (!st.isDirectory()) throw new Error(`unsupported file type: ${abs}`)
  const names = (await fs.readdir(abs)).filter(n => hidden || !n.startsWith('.'))
  if (names.length === 0) {
    yield { path: rel }
    return
  }
  for (const name of names) {
    yield * walk(path.join(abs, name), rel + '/' + name, hidden)
  }
}

async function run (job) {
  const abs = path.resolve(job.path)
  let last
  for await (const entry of importer(walk(abs, path.basename(abs), Boolean(job.hidden)), new BlackHoleBlockstore(), options(job))) {
    last = entry
  }
  return { cid: last.cid.toString(), size: Number(last.size) }
}

const chunks = []
for await (const c of process.stdin) chunks.push(c)
const jobs = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const out = []
for (const job of jobs) out.push(await run(job))
process.stdout.write(JSON.stringify(out) + '\n')
