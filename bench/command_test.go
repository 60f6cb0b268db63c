package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func benchApp(out *bytes.Buffer) *cli.App {
	return &cli.App{Name: "webhookops", Commands: []*cli.Command{Command()}, Writer: out, ErrWriter: out}
}

func TestCommandWritesTableAndJSON(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	cfg := serverConfig("bench", "benchsecret", []string{"sink"}, []destConfig{{
		slug: "sink", url: "http://127.0.0.1:9/hook", ordering: "parallel", maxInFlight: 1,
		timeout: time.Second, maxAttempts: 1, backoffBase: time.Millisecond,
	}})
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ingestAddr, adminAddr, err := fakeAddrs()
	if err != nil {
		t.Fatal(err)
	}
	g, err := startFakeGateway(dir, cfgPath, ingestAddr, adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	jsonPath := filepath.Join(dir, "report.json")
	var out bytes.Buffer
	err = benchApp(&out).Run([]string{"webhookops", "bench", "ingest", "--target", "http://" + ingestAddr,
		"--rate", "100", "--duration", "300ms", "--warmup", "0", "--baseline", "-q", "--json", jsonPath})
	if err != nil {
		t.Fatalf("bench ingest: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "ingest") || !strings.Contains(out.String(), "p99.9 ms") {
		t.Fatalf("no table on stdout:\n%s", out.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	checkComplete(t, &rep, true)
	if rep.Scenarios[0].Count != 30 {
		t.Errorf("100/s for 300ms: %d requests, want 30", rep.Scenarios[0].Count)
	}

	out.Reset()
	err = benchApp(&out).Run([]string{"webhookops", "bench", "ingest", "--target", "http://10.1.2.3:8080", "-q"})
	if !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("bench ingest against 10.1.2.3: %v, want ErrNotLoopback", err)
	}
}
