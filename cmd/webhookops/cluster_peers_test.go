package main

import (
	"maps"
	"testing"
)

func TestParseMemberURLs(t *testing.T) {
	good := map[string]map[uint64]string{
		"1=http://127.0.0.1:8081,2=http://[::1]:8082":              {1: "http://127.0.0.1:8081", 2: "http://[::1]:8082"},
		" 3=https://node3.example:8443/ , 4=https://10.0.0.4:8443": {3: "https://node3.example:8443", 4: "https://10.0.0.4:8443"},
	}
	for in, want := range good {
		got, err := parseMemberURLs(in)
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("parseMemberURLs(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", ",", "1", "0=http://127.0.0.1:1", "x=http://127.0.0.1:1",
		"1=http://10.0.0.1:8081",      // plain off loopback
		"1=http://localhost:8081",     // a name may resolve anywhere
		"1=ftp://127.0.0.1:21",        // not http
		"1=127.0.0.1:8081",            // no scheme
		"1=https://h:1/api",           // a path
		"1=https://h:1?x=1",           // a query
		"1=https://h:1,1=https://h:2", // an id twice
	} {
		if got, err := parseMemberURLs(in); err == nil {
			t.Errorf("parseMemberURLs(%q) = %v, want an error", in, got)
		}
	}
}
