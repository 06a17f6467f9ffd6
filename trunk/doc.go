// Package trunk carries media between the nodes of a cluster.
//
// Each node has one UDP socket for trunk traffic (an Endpoint), and between
// each pair of nodes there is one flow (a Peer) that carries every stream
// relayed between them: one SRTP session per direction, with a trunk SSRC
// per stream (one layer of one track) chosen by the node that sends it.
// Multiplexing the streams by SSRC over one flow per pair keeps the number
// of sockets, keys and RTT probes independent of the number of rooms.
//
// Keys. Every Endpoint makes a fresh X25519 key pair; the cluster publishes
// the public keys in its registry, and Connect takes the peer's. Both sides
// compute the same X25519 shared secret and derive, with HKDF-SHA-256 and an
// info string naming the direction ("switchboard trunk A->B"), a separate
// AES-128-GCM SRTP master key and salt for each direction. No key travels
// over the network, and a restarted node, with its new key pair, never
// reuses a key. SRTP replay protection stays on.
//
// Receiving. One goroutine reads the socket. It finds the peer by the source
// address (packets from elsewhere are dropped and counted), tells RTCP from
// RTP as RFC 5761 does, decrypts with the peer's receive context (packets
// that fail authentication are dropped and counted) and routes RTP by SSRC
// to the Stream the caller asked for, whose bounded buffer drops rather than
// blocks when its reader is slow.
//
// Repair and control. A Stream that sees a sequence gap NACKs the missing
// packets at once and again every 20 ms, ten times at most; the sending node
// gets them through OnNACK and resends from its cache with WriteRTP. PLI
// and FIR reach the sender through OnKeyframeRequest. About once a second
// each side sends a sender report on its control SSRC, the other answers at
// once with a receiver report, and the LSR/DLSR of the answer give the RTT
// (RFC 3550 section 6.4.1). One ticker goroutine per Endpoint drives the
// NACK retries and the sender reports.
package trunk
