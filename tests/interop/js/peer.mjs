// A js-libp2p peer driven over stdin/stdout with JSON lines, for tests/interop/test_jslibp2p.py: the same
// protocol as pylibp2p_peer.py (requests {id, cmd, ...}; answers {id, ok, ...}; events {event, ...}).
// TCP + Noise + Yamux, Identify, Ping, Kademlia (server mode, /ipfs/kad/1.0.0) and GossipSub; with a second
// argument of roles (comma-separated): "client" listens on /p2p-circuit (reserves at relays it connects to and
// dials circuits), "hop" also runs the Circuit Relay v2 server, "dcutr" runs DCUtR.
import { createInterface } from 'node:readline'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT } from '@libp2p/kad-dht'
import { gossipsub } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'

const hex = (bytes) => Buffer.from(bytes).toString('hex')
const unhex = (text) => new Uint8Array(Buffer.from(text, 'hex'))
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const listen = process.argv[2] ?? '/ip4/127.0.0.1/tcp/0'
const roles = new Set((process.argv[3] ?? '').split(',').filter(Boolean))
const relayed = roles.has('client') || roles.has('hop')
const node = await createLibp2p({
  addresses: { listen: relayed ? [listen, '/p2p-circuit'] : [listen] },
  transports: relayed ? [tcp(), circuitRelayTransport()] : [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    ping: ping(),
    // loopback peers must stay in the routing table: keep every address (the default drops private ones)
    dht: kadDHT({ clientMode: false, protocol: '/ipfs/kad/1.0.0', peerInfoMapper: (p) => p }),
    pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false }),
    ...(roles.has('hop') ? { relay: circuitRelayServer() } : {}),
    ...(roles.has('dcutr') ? { dcutr: dcutr() } : {})
  }
})

node.services.pubsub.addEventListener('message', (evt) => {
  const m = evt.detail
  emit({ event: 'message', topic: m.topic, from: m.from?.toString(), data_hex: hex(m.data) })
})

const commands = {
  async connect ({ addr }) {
    const conn = await node.dial(multiaddr(addr))
    return { peer_id: conn.remotePeer.toString() }
  },
  async ping ({ peer }) {
    return { rtt_ms: await node.services.ping.ping(peerIdFromString(peer)) }
  },
  async peer_info ({ peer }) {
    const info = await node.peerStore.get(peerIdFromString(peer))
    return {
      addrs: info.addresses.map((a) => ({ addr: a.multiaddr.toString(), certified: a.isCertified })),
      signed_record: info.peerRecordEnvelope != null,
      protocols: info.protocols
    }
  },
  async put_value ({ key_hex, value_hex }) {
    let sent = 0
    for await (const event of node.services.dht.put(unhex(key_hex), unhex(value_hex))) {
      if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') sent++
    }
    return { stored_on: sent }
  },
  async get_value ({ key_hex }) {
    for await (const event of node.services.dht.get(unhex(key_hex))) {
      if (event.name === 'VALUE') return { value_hex: hex(event.value), from: event.from.toString() }
    }
    throw new Error('no value found')
  },
  async subscribe ({ topic }) { node.services.pubsub.subscribe(topic); return {} },
  async publish ({ topic, data_hex }) {
    const result = await node.services.pubsub.publish(topic, unhex(data_hex))
    return { recipients: result.recipients.map(String) }
  },
  async mesh ({ topic }) { return { peers: node.services.pubsub.getMeshPeers(topic) } },
  async score ({ peer }) { return { score: node.services.pubsub.getScore(peer) } },
  async addrs () { return { addrs: node.getMultiaddrs().map(String) } },
  async connections ({ peer }) {
    return {
      connections: node.getConnections(peerIdFromString(peer)).map((c) => ({
        kind: c.remoteAddr.toString().includes('/p2p-circuit') ? 'relayed' : 'direct',
        addrs: [c.remoteAddr.toString()]
      }))
    }
  },
  async quit () { setTimeout(async () => { await node.stop(); process.exit(0) }, 10); return {} }
}

emit({ event: 'ready', peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue
  const req = JSON.parse(line)
  const run = commands[req.cmd]
  if (run == null) { emit({ id: req.id, ok: false, error: `unknown command ${req.cmd}` }); continue }
  const timeout = (req.timeout ?? 10) * 1000
  Promise.race([run(req), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), timeout))])
    .then((reply) => emit({ id: req.id, ok: true, ...reply }))
    .catch((err) => emit({ id: req.id, ok: false, error: String(err?.message ?? err) }))
}
await node.stop()
process.exit(0)
