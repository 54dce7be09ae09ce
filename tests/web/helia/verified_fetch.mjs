// An independent IPFS client for tests/web/test_helia_interop.py: @helia/verified-fetch with an
// etdb gateway as its ONLY source of blocks, and @ipld/car reading the gateway's own CARs.
//
//   node verified_fetch.mjs GATEWAY_URL SECONDS [ipfs://CID[/path] | car:/ipfs/CID[/path]?...]...
//
// One JSON line per argument on stdout:
//   {"url", "ok", "status", "length", "sha256", "error"} for ipfs:// URLs (verified-fetch), and
//   {"url", "ok", "blocks", "roots", "error"} for car: paths (every block hashed against its CID).
// Exit 0 when every item succeeded, 1 when any failed, 124 when the watchdog fired (a hung
// fetch must never hang the test suite).
//
// No public network: the Helia node gets one router, a non-fallback one that names GATEWAY_URL
// as the provider of every CID (no delegated routing, no recursive-gateway fallback, no libp2p),
// and the trustless-gateway block broker is told it may use plain HTTP on loopback.

import { createHash } from 'node:crypto'
import { CarBlockIterator } from '@ipld/car'
import { trustlessGatewayBlockBroker } from '@helia/trustless-gateway-client'
import { createVerifiedFetchWithHelia } from '@helia/verified-fetch'
import { uriToMultiaddr } from '@multiformats/uri-to-multiaddr'
import { createHeliaLight } from 'helia'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'

const TRANSPORT_IPFS_GATEWAY_HTTP = 0x0920 // multicodec table

const [gateway, seconds, ...items] = process.argv.slice(2)
if (gateway == null || seconds == null || items.length === 0) {
  console.error('usage: node verified_fetch.mjs GATEWAY_URL SECONDS ITEM...')
  process.exit(2)
}

// A fetch gives up well before the watchdog, so a hung one is reported as its own failure (with
// helia's error) rather than as a silent process; the watchdog fences what is left.
const fetchMillis = Math.max(5, Number(seconds) - 15) * 1000
const watchdog = setTimeout(() => {
  console.error(`watchdog: no result after ${seconds} s`)
  process.exit(124)
}, Number(seconds) * 1000)

// A router without the 'fallback' capability: Helia asks it first and only it.
function gatewayRouter (url) {
  const id = CID.createV1(TRANSPORT_IPFS_GATEWAY_HTTP, identity.digest(new TextEncoder().encode(url)))
  const provider = {
    id,
    multiaddrs: [uriToMultiaddr(url)],
    protocols: ['transport-ipfs-gateway-http'],
    router: 'etdb-gateway'
  }
  return {
    name: 'etdb-gateway',
    async * findProviders () { yield provider },
    toString () { return `etdb-gateway(${url})` }
  }
}

async function verifiedFetchItem (vfetch, url) {
  const out = { url, ok: false, status: null, length: null, sha256: null, error: null }
  try {
    const response = await vfetch(url, { signal: AbortSignal.timeout(fetchMillis) })
    out.status = response.status
    const body = new Uint8Array(await response.arrayBuffer())
    if (response.ok) {
      out.length = body.length
      out.sha256 = createHash('sha256').update(body).digest('hex')
      out.ok = true
    } else {
      out.error = new TextDecoder().decode(body).slice(0, 500)
    }
  } catch (err) {
    out.error = String(err?.stack ?? err).slice(0, 800)
  }
  return out
}

// A gateway CAR read by an independent CAR implementation: every block hashed here.
async function carItem (path) {
  const out = { url: path, ok: false, blocks: 0, roots: [], error: null }
  try {
    const response = await fetch(new URL(path, gateway), {
      headers: { Accept: 'application/vnd.ipld.car' },
      signal: AbortSignal.timeout(fetchMillis)
    })
    if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`)
    const reader = await CarBlockIterator.fromIterable(response.body)
    out.roots = (await reader.getRoots()).map(String)
    for await (const { cid, bytes } of reader) {
      if (cid.multihash.code !== sha256.code) throw new Error(`${cid}: not sha2-256`)
      const digest = await sha256.digest(bytes)
      if (Buffer.compare(Buffer.from(digest.bytes), Buffer.from(cid.multihash.bytes)) !== 0) {
        throw new Error(`block ${cid} does not match its CID`)
      }
      out.blocks++
    }
    out.ok = true
  } catch (err) {
    out.error = String(err?.message ?? err).slice(0, 800)
  }
  return out
}

const helia = createHeliaLight({
  routers: [gatewayRouter(gateway)],
  blockBrokers: [trustlessGatewayBlockBroker({ allowInsecure: true, allowLocal: true })]
})
await helia.start()
const vfetch = await createVerifiedFetchWithHelia(helia)

let failed = 0
for (const item of items) {
  const result = item.startsWith('car:')
    ? await carItem(item.slice(4))
    : await verifiedFetchItem(vfetch, item)
  if (!result.ok) failed++
  process.stdout.write(JSON.stringify(result) + '\n')
}
// Every result is out: stopping must not turn them into a watchdog exit (a session still waiting
// for a provider after the only one was evicted for lying may take its time to stop).
const stopped = Promise.allSettled([vfetch.stop(), helia.stop()])
await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 5000))])
clearTimeout(watchdog)
process.exit(failed === 0 ? 0 : 1)
