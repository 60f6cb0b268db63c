// Package agentd is the WebhookOps agent: it runs next to private apps,
// dials out to the gateway's tunnel (so it works from behind NAT), proves
// who it is, and serves the streams the gateway opens by connecting them to
// the local targets it is allowed to reach.
//
// # What it owns
//
//   - A session to every tunnel it is given (Config.Tunnels): one for a
//     single node, one per member of a cluster, each with its own pin
//     (or one pin shared by members that share a certificate). A cluster
//     delivers to an agent from whichever member leads the destination's
//     partition, through that member's own session, so the agent keeps all
//     of them up at once: each session runs its own reconnect loop, and one
//     member down (or refusing) costs only its own session. Sessions
//     reports each one (up or not, transport, sessions so far, failures,
//     the last error); the log says which tunnel every line is about and
//     how many sessions are up ("sessions_up=2/3").
//   - Following the cluster: a member's server tells its agents every
//     member's tunnel and pin (tunnelproto MEMBERS, after OK and on every
//     change). The agent joins the members it was not given and stops a
//     learned session once its member leaves the list; the tunnels given in
//     Config stay, with their own pins. It follows only a list that names
//     every configured tunnel by the same address, so it never keeps two
//     sessions to one server under two names (they would replace each
//     other forever). Config.Static (agentd join --static) turns it off.
//   - The reconnect loop, per tunnel: capped, jittered exponential backoff
//     (1 s to 30 s by default), reset after a session that stayed up for
//     HealthyAfter; every reconnect is logged with its reason.
//   - Agent-side enforcement of the allow list: a target not in Allow is
//     refused with "target not allowed" whatever the server asked for, so a
//     compromised or misconfigured gateway cannot reach anything else.
//   - Serving a stream: dial the target with a timeout, answer OPEN_OK or
//     ERROR "dial failed", then copy bytes both ways with half-close.
//   - Draining on shutdown: GOAWAY to the server, in-flight streams get up to
//     DrainTimeout to finish.
//
// # What it must never do
//
//   - Import storage or actor packages (Pebble, protoactor-go): the agent
//     ships as a small binary of its own; a test guards its import graph.
//   - Log its secret, or connect to a server whose certificate does not
//     match the pinned fingerprint.
//   - Reconnect in a tight loop: every attempt waits at least MinBackoff/2.
//   - Keep two sessions to one address: the server keeps one session per
//     agent, so two would replace each other forever (Validate refuses an
//     address listed twice).
//
// The wire protocol and the handshake live in package tunnelproto.
package agentd
