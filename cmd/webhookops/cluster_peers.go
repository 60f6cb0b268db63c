package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/actors/cluster"
	"github.com/webhookops/webhookops/admin"
)

// memberAdminURLsFlag lists members' admin APIs, overriding what they
// recorded in the metadata shard.
var memberAdminURLsFlag = &cli.StringFlag{Name: "member-admin-urls", EnvVars: []string{"WEBHOOKOPS_MEMBER_ADMIN_URLS"},
	Usage: "members' admin APIs as this member reaches them: 1=https://host:port,2=...; a member listed here is reached at this URL instead of the one it recorded in the metadata shard (--admin-advertise-url), the others at theirs. A replay asked of any member is carried out by the members that deliver its destinations. http:// only on loopback; https:// is verified against --cluster-ca and the system roots"}

// adminAdvertiseFlag is the admin URL this member records for the others.
var adminAdvertiseFlag = &cli.StringFlag{Name: "admin-advertise-url", EnvVars: []string{"WEBHOOKOPS_ADMIN_ADVERTISE_URL"},
	Usage: "this member's admin API as the other members reach it (https://host:port; http:// only on loopback), recorded in the metadata shard so a replay asked of another member is forwarded here. Default: derived from --admin-addr when it names one address (a loopback one for plain http); none for a wildcard bind"}

// parseMemberURLs parses "1=https://host:port,2=..." (admin.CheckMemberURL
// for each URL).
func parseMemberURLs(s string) (map[uint64]string, error) {
	return cluster.ParseIDList(s, "URL", func(_ uint64, raw string) (string, error) { return admin.CheckMemberURL(raw) })
}

// adminAdvertiseURL is the admin URL a member records for the others:
// advertise (--admin-advertise-url) checked, or else derived from the
// admin listener's bound address when that names the one address others
// reach it at: http://127.0.0.1:PORT for a plain listener on loopback (a
// cluster on one machine), https://IP:PORT for a TLS one on a given IP.
// When none can be derived, url is "" and why says so; a bad advertise is
// an error.
func adminAdvertiseURL(advertise string, bound netip.AddrPort, secure bool) (url, why string, err error) {
	if advertise != "" {
		u, err := admin.CheckMemberURL(advertise)
		if err != nil {
			return "", "", fmt.Errorf("--%s: %w", adminAdvertiseFlag.Name, err)
		}
		if secure && strings.HasPrefix(u, "http://") {
			return "", "", fmt.Errorf("--%s %s: the admin listener serves TLS; use https://", adminAdvertiseFlag.Name, advertise)
		}
		return u, "", nil
	}
	ip := bound.Addr().Unmap()
	switch {
	case !bound.IsValid() || ip.IsUnspecified():
		return "", "--admin-addr binds every interface, so which address the other members reach this one at cannot be derived", nil
	case secure:
		return "https://" + netip.AddrPortFrom(ip, bound.Port()).String(), "", nil
	case ip.IsLoopback():
		return "http://" + netip.AddrPortFrom(ip, bound.Port()).String(), "", nil
	}
	return "", "--admin-addr serves plain http off loopback, and tokens must not cross the network in clear (--admin-tls-cert)", nil
}

// memberPeers is the admin API's way to the other members: the URLs they
// record (recorded), overridden by --member-admin-urls. https answers are
// verified against the system roots and --cluster-ca; the member presents
// its cluster certificate when it has one.
func memberPeers(c *cli.Context, recorded func() (map[uint64]string, error)) (*admin.Peers, error) {
	p, err := newMemberPeers(c.String(memberAdminURLsFlag.Name), c.Uint64("node-id"), clusterTLS(c))
	if err != nil {
		return nil, err
	}
	p.Recorded = recorded
	return p, nil
}

// newMemberPeers is memberPeers from the flags' values, without the
// records; raw may be empty.
func newMemberPeers(raw string, self uint64, files cluster.TLSFiles) (*admin.Peers, error) {
	var urls map[uint64]string
	if raw != "" {
		var err error
		if urls, err = parseMemberURLs(raw); err != nil {
			return nil, fmt.Errorf("--%s: %w", memberAdminURLsFlag.Name, err)
		}
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

// adminURLs reads the admin URL each recorded member recorded.
func (m *clusterMember) adminURLs() (map[uint64]string, error) {
	recs, err := m.cl.Members()
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]string, len(recs))
	for id, r := range recs {
		out[id] = reachableAdminURL(r)
	}
	return out, nil
}

// reachableAdminURL is the admin URL a member recorded, or "" when it
// names a loopback address while the member's raft address is not one:
// that member runs on another machine, and the URL would reach whatever
// listens on this machine's loopback at that port (this member itself, or
// another process handed the caller's token).
func reachableAdminURL(r cluster.MemberRecord) string {
	u, err := url.Parse(r.AdminURL)
	if err != nil || !isLoopbackHost(u.Hostname()) {
		return r.AdminURL
	}
	host, _, err := net.SplitHostPort(r.Address)
	if err != nil || !isLoopbackHost(host) {
		return ""
	}
	return r.AdminURL
}

// isLoopbackHost reports whether host is a loopback IP or localhost.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
