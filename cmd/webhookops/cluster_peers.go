package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/actors/cluster"
	"github.com/webhookops/webhookops/admin"
)

// memberAdminURLsFlag lists the members' admin APIs, so a member forwards
// a replay to the member that delivers its destinations.
var memberAdminURLsFlag = &cli.StringFlag{Name: "member-admin-urls", EnvVars: []string{"WEBHOOKOPS_MEMBER_ADMIN_URLS"},
	Usage: "every member's admin API as the others reach it: 1=https://host:port,2=...; a replay asked of any member is then carried out by the members that deliver its destinations (without it a member refuses, 409, a replay of a destination another member delivers). http:// only on loopback; https:// is verified against --cluster-ca and the system roots"}

// parseMemberURLs parses "1=https://host:port,2=...". Plain http is
// allowed only to a loopback IP: the caller's token crosses with every
// forwarded request.
func parseMemberURLs(s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, raw, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want id=URL", part)
		}
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q: the id must be a number above 0", part)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("member %d appears twice", n)
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("%q: want http[s]://host:port", part)
		}
		switch u.Scheme {
		case "https":
		case "http":
			if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("%q: plain http only to a loopback address (tokens cross with every forwarded request); use https", part)
			}
		default:
			return nil, fmt.Errorf("%q: want http or https", part)
		}
		out[n] = u.Scheme + "://" + u.Host
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no members")
	}
	return out, nil
}

// memberPeers is the admin API's way to the other members, or nil when
// --member-admin-urls is not set. https answers are verified against the
// system roots and --cluster-ca; the member presents its cluster
// certificate when it has one.
func memberPeers(c *cli.Context) (*admin.Peers, error) {
	raw := c.String(memberAdminURLsFlag.Name)
	if raw == "" {
		return nil, nil
	}
	return newMemberPeers(raw, c.Uint64("node-id"), cluster.TLSFiles{CA: c.String("cluster-ca"), Cert: c.String("cluster-cert"), Key: c.String("cluster-key")})
}

// newMemberPeers is memberPeers from the flags' values.
func newMemberPeers(raw string, self uint64, files cluster.TLSFiles) (*admin.Peers, error) {
	urls, err := parseMemberURLs(raw)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", memberAdminURLsFlag.Name, err)
	}
	if _, ok := urls[self]; !ok {
		return nil, fmt.Errorf("--%s: this member (%d) is not among them", memberAdminURLsFlag.Name, self)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := files.CA; ca != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--cluster-ca: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cluster-ca %s: no PEM certificate in it", ca)
		}
		tc.RootCAs = pool
	}
	if cert, key := files.Cert, files.Key; cert != "" && key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--cluster-cert/--cluster-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &admin.Peers{Self: self, URLs: urls, Client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}, nil
}
