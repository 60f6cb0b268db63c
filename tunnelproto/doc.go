// Package tunnelproto is the tunnel between the WebhookOps gateway and its
// agents (agentd): the wire format (see spec.md), the authentication
// handshake, and the QUIC session on both ends.
package tunnelproto
