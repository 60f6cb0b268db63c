package delivery

import (
	"maps"
	"slices"
	"strings"
)

// isHopByHop reports whether canonical header key belongs to one connection
// only (RFC 9110 section 7.6.1), and so is never forwarded.
func isHopByHop(key string) bool {
	switch key {
	case "Connection", "Keep-Alive", "Te", "Trailer", "Trailers", "Transfer-Encoding", "Upgrade":
		return true
	}
	return strings.HasPrefix(key, "Proxy-")
}

// ourHeader reports whether canonical key is one only we set.
func ourHeader(key string) bool {
	switch key {
	case hdrWebhookID, hdrWebhookTimestamp, hdrWebhookSignature, hdrUserAgent:
		return true
	}
	return strings.HasPrefix(key, "X-Webhookops-")
}

// dropSourceHeader reports whether a source header with canonical key is not
// forwarded.
func dropSourceHeader(key string) bool {
	switch key {
	case "Host", "Content-Length", "Expect", "Accept-Encoding":
		return true
	}
	return isHopByHop(key) || ourHeader(key)
}

// appendTokens appends the canonical header names listed in a Connection
// header value.
func appendTokens(dst []string, v string) []string {
	for tok := range strings.SplitSeq(v, ",") {
		if tok = strings.TrimSpace(tok); tok != "" {
			dst = append(dst, tok)
		}
	}
	return dst
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// sortedKeys returns m's keys in order, so that two custom headers whose
// names differ only in case resolve the same way every time.
func sortedKeys(m map[string]string) []string {
	switch len(m) {
	case 0:
		return nil
	case 1:
		for k := range m {
			return []string{k}
		}
	}
	return slices.Sorted(maps.Keys(m))
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValue reports whether v can be sent as a field value: no
// control characters other than horizontal tab (so no CR, LF or NUL).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
