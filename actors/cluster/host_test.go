package cluster

import (
	"reflect"
	"testing"
)

func TestParseMembers(t *testing.T) {
	tests := []struct {
		in   string
		want map[uint64]string
		err  bool
	}{
		{"1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103", map[uint64]string{1: "127.0.0.1:7101", 2: "127.0.0.1:7102", 3: "127.0.0.1:7103"}, false},
		{" 1=a:1 , 2=b:2 ,", map[uint64]string{1: "a:1", 2: "b:2"}, false},
		{"", nil, true},
		{"1=a:1,1=b:2", nil, true},              // id twice
		{"1=a:1,2=a:1", nil, true},              // address twice
		{"0=a:1", nil, true},                    // id 0
		{"x=a:1", nil, true},                    // not a number
		{"1:a:1", nil, true},                    // no =
		{"1=nohostport", nil, true},             // no port
		{"-1=a:1", nil, true},                   // negative
		{"1=a:1,2", nil, true},                  // half a member
		{"18446744073709551616=a:1", nil, true}, // overflows
	}
	for _, tt := range tests {
		got, err := ParseMembers(tt.in)
		if (err != nil) != tt.err || (!tt.err && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ParseMembers(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	ok := Config{NodeID: 2, RaftAddr: "127.0.0.2:2", Members: map[uint64]string{1: "127.0.0.1:1", 2: "127.0.0.2:2"}, Dir: t.TempDir(), DB: db}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Config){
		"no id":             func(c *Config) { c.NodeID = 0 },
		"not a member":      func(c *Config) { c.NodeID = 3 },
		"address mismatch":  func(c *Config) { c.RaftAddr = "c:3" },
		"no store":          func(c *Config) { c.DB = nil },
		"no raft directory": func(c *Config) { c.Dir = "" },
	} {
		c := ok
		change(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
}
