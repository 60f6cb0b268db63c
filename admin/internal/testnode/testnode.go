// Package testnode starts a real node for the tests of admin's
// subpackages (the CLI, the UI): Pebble in a directory, the actors, the
// admin server and the ingest handler on a loopback HTTP server. It is
// for tests only; nothing outside them imports it.
package testnode

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/ingress"
	"github.com/webhookops/webhookops/ingress/verify"
	"github.com/webhookops/webhookops/wal"
)

// Options configure a node. A zero field means the default.
type Options struct {
	Dir       string // the data dir; "" is a new t.TempDir()
	SecretKey []byte // the store's key; nil is a fixed test key
	Token     string // the bootstrap admin token (--admin-token)
	// Tunnel is what enrollment commands name; nil runs no tunnel.
	Tunnel *admin.TunnelInfo
	// TunnelMembers, when set, is a cluster's tunnel directory (the
	// admin server's Config.TunnelMembers).
	TunnelMembers func(context.Context) ([]admin.TunnelMember, error)
	// Seed writes to the store before the admin server starts.
	Seed func(*wal.DB)
}

// Node is a running node. Close stops it; it is idempotent.
type Node struct {
	DB     *wal.DB
	Node   *actors.Node
	Admin  *admin.Server
	Ingest *httptest.Server // POST /in/{source}

	once sync.Once
}

// Start starts a node; the caller closes it (a test that restarts on the
// same dir closes the first before starting the second).
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.SecretKey == nil {
		o.SecretKey = bytes.Repeat([]byte{3}, 32)
	}
	db, err := wal.Open(o.Dir, wal.Config{Partitions: 4, CacheSize: 8 << 20, SecretKey: o.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if o.Seed != nil {
		o.Seed(db)
	}
	n, err := actors.Start(actors.Config{DB: db, Deliverer: delivery.NewClient(delivery.Options{}), Shards: 2, DrainTimeout: time.Second,
		// Refusals are tallied; a short interval lets tests read their rows.
		RejectionInterval: 20 * time.Millisecond})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	adm, err := admin.New(admin.Config{Node: n, BootstrapToken: o.Token, Tunnel: o.Tunnel, TunnelMembers: o.TunnelMembers})
	if err != nil {
		n.Close()
		db.Close()
		t.Fatal(err)
	}
	return &Node{DB: db, Node: n, Admin: adm, Ingest: httptest.NewServer(ingress.NewHandler(ingress.Config{Node: n}))}
}

// Close stops the ingest server, the admin server, the node and the store.
func (n *Node) Close() {
	n.once.Do(func() {
		n.Ingest.Close()
		n.Admin.Close()
		n.Node.Close()
		n.DB.Close()
	})
}

// Send posts a generic webhook to source, signed with secret, with key as
// its idempotency key, and returns the event id. Anything but 202 fails
// the test.
func (n *Node) Send(t testing.TB, source, secret, key, eventType, body string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.Ingest.URL+"/in/"+source, strings.NewReader(body))
	req.Header.Set("X-Webhookops-Signature", verify.SignGeneric([]byte(secret), []byte(body)))
	req.Header.Set("X-Event-Id", key)
	req.Header.Set("X-Event-Type", eventType)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest %s: %d %s", key, resp.StatusCode, raw)
	}
	var r struct {
		EventID string `json:"event_id"`
	}
	json.Unmarshal(raw, &r)
	return r.EventID
}

// Eventually polls cond until it holds, failing the test after timeout.
// (Package admin's own tests keep a copy: they cannot import this package,
// which imports admin.)
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr is a loopback TCP address free to listen on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
