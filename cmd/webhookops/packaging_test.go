package main

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/webhookops/webhookops/admin/config"
)

// checkCommandLine fails unless args is a command of the app followed by
// flags it defines: what a unit, a compose file or a Dockerfile runs must
// not drift from the flags that exist.
func checkCommandLine(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("%s: no command", where)
	}
	cmd := newApp().Command(args[0])
	if cmd == nil {
		t.Fatalf("%s: %q is not a webhookops command", where, args[0])
	}
	var names []string
	for _, f := range cmd.Flags {
		names = append(names, f.Names()...)
	}
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !slices.Contains(names, name) {
			t.Errorf("%s: %s has no flag --%s", where, args[0], name)
		}
	}
}

// checkEnv checks that every WEBHOOKOPS_ variable set is one a serve flag
// reads.
func checkEnv(t *testing.T, where string, env map[string]string) {
	t.Helper()
	var known []string
	for _, f := range serveCommand().Flags {
		if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
			known = append(known, ev.GetEnvVars()...)
		}
	}
	for k := range env {
		if strings.HasPrefix(k, "WEBHOOKOPS_") && !slices.Contains(known, k) {
			t.Errorf("%s: %s is not read by serve", where, k)
		}
	}
}

// TestStaticBinaryInEmptyRoot: built as the image builds it
// (CGO_ENABLED=0), the binary has no dynamic section and starts, takes a
// webhook and answers /readyz in an empty root: chrooted as an
// unprivileged user when the test runs as root, else with an empty
// environment in an empty directory.
func TestStaticBinaryInEmptyRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static binary and runs it as a child process")
	}
	bin := buildCommands(t, "webhookops-static")[0]
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the CGO_ENABLED=0 binary has a %v program header: not static", p.Type)
		}
	}
	if f.Section(".dynamic") != nil || f.Section(".interp") != nil {
		t.Fatal("the CGO_ENABLED=0 binary has a dynamic section")
	}
	f.Close()
	if ldd, err := exec.LookPath("ldd"); err == nil {
		out, _ := exec.Command(ldd, bin).CombinedOutput()
		if !strings.Contains(string(out), "not a dynamic executable") {
			t.Fatalf("ldd %s: %s", bin, out)
		}
	}

	root := t.TempDir()
	os.Chmod(root, 0o755)
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "webhookops"), raw, 0o755); err != nil {
		t.Fatal(err)
	}
	unsignedConfig(t, root) // webhookops.yaml
	os.Chmod(filepath.Join(root, "webhookops.yaml"), 0o644)
	if err := os.Mkdir(filepath.Join(root, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	ingest, adminAddr := freeAddr(t), freeAddr(t)
	const uid = 65532 // the image's user
	chroot := os.Geteuid() == 0
	prog, data, cfg := "/webhookops", "/data", "/webhookops.yaml"
	if !chroot {
		prog, data, cfg = filepath.Join(root, "webhookops"), filepath.Join(root, "data"), filepath.Join(root, "webhookops.yaml")
	} else if err := os.Chown(filepath.Join(root, "data"), uid, uid); err != nil {
		t.Fatal(err)
	}
	inRoot := func(args ...string) *exec.Cmd {
		c := exec.Command(prog, args...)
		c.Env = []string{}
		c.Dir = root
		if chroot {
			c.Dir = "/"
			c.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		}
		return c
	}
	t.Logf("chroot as uid %d: %v", uid, chroot)

	logs := &logBuf{}
	srv := inRoot("serve", "--data-dir", data, "--config", cfg, "--ingest-addr", ingest, "--admin-addr", adminAddr, "--log-format", "json")
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		srv.Process.Kill()
		<-exited
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the static binary exited in the empty root: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /readyz within 30 s:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Post("http://"+ingest+"/in/demo", "application/json", strings.NewReader(`{"id":"static"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest in the empty root: %d\n%s", resp.StatusCode, logs)
	}
	// The image's health check: the binary probing itself.
	if out, err := inRoot("health", "--url", "http://"+adminAddr+"/readyz").CombinedOutput(); err != nil {
		t.Fatalf("health: %v\n%s", err, out)
	}
	if out, err := inRoot("health", "--url", "http://"+ingest+"/nope").CombinedOutput(); err == nil {
		t.Fatalf("health of a 404 succeeded: %s", out)
	}
	srv.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30 s of SIGTERM:\n%s", logs)
	}
	if chroot {
		// The store was written by the unprivileged user.
		fi, err := os.Stat(filepath.Join(root, "data", "secret.key"))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != uid || fi.Mode().Perm() != 0o600 {
			t.Fatalf("secret.key: %v %v", fi, err)
		}
	}
}

// TestComposeFile: compose.yaml parses, builds the image from this
// Dockerfile, keeps the data dir on a volume, checks /readyz through the
// binary, runs a demo sink, and its commands, variables and embedded
// config are ones this build accepts.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Configs     []struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		} `yaml:"configs"`
		Ports       []string `yaml:"ports"`
		Volumes     []string `yaml:"volumes"`
		Healthcheck *struct {
			Test        []string `yaml:"test"`
			Interval    string   `yaml:"interval"`
			Timeout     string   `yaml:"timeout"`
			Retries     int      `yaml:"retries"`
			StartPeriod string   `yaml:"start_period"`
		} `yaml:"healthcheck"`
		Restart         string   `yaml:"restart"`
		StopSignal      string   `yaml:"stop_signal"`
		StopGracePeriod string   `yaml:"stop_grace_period"`
		DependsOn       []string `yaml:"depends_on"`
	}
	var doc struct {
		Name     string             `yaml:"name"`
		Services map[string]service `yaml:"services"`
		Volumes  map[string]any     `yaml:"volumes"`
		Configs  map[string]struct {
			Content string `yaml:"content"`
		} `yaml:"configs"`
	}
	if err := yaml.UnmarshalWithOptions(raw, &doc, yaml.Strict()); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	node, ok := doc.Services["webhookops"]
	if !ok || node.Build == nil {
		t.Fatalf("no webhookops service built here: %+v", doc.Services)
	}
	// The build context is the repository root and names this Dockerfile.
	if ctx := filepath.Clean(node.Build.Context); ctx != filepath.Clean("../..") {
		t.Errorf("build context %q", node.Build.Context)
	}
	if _, err := os.Stat(filepath.Join(node.Build.Context, node.Build.Dockerfile)); err != nil {
		t.Errorf("dockerfile: %v", err)
	}
	if _, err := os.Stat(filepath.Join(node.Build.Context, "go.mod")); err != nil {
		t.Errorf("the build context has no go.mod: %v", err)
	}
	checkCommandLine(t, "compose webhookops", node.Command)
	checkEnv(t, "compose webhookops", node.Environment)
	if !slices.Contains(node.Volumes, "data:/data") || doc.Volumes == nil {
		t.Errorf("the data dir is not on a named volume: %v", node.Volumes)
	}
	if _, ok := doc.Volumes["data"]; !ok {
		t.Errorf("volume data not declared: %v", doc.Volumes)
	}
	if hc := node.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/webhookops", "health"}) {
		t.Errorf("health check %+v, want the binary probing /readyz", hc)
	}
	checkCommandLine(t, "compose health check", node.Healthcheck.Test[2:])
	for _, d := range []string{node.Healthcheck.Interval, node.Healthcheck.Timeout, node.Healthcheck.StartPeriod} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("health check duration %q: %v", d, err)
		}
	}
	if node.StopSignal != "SIGTERM" {
		t.Errorf("stop signal %q", node.StopSignal)
	}
	if d, err := time.ParseDuration(node.StopGracePeriod); err != nil || d < 20*time.Second {
		t.Errorf("stop grace period %q: shorter than a drain", node.StopGracePeriod)
	}
	if !slices.Contains(node.Ports, "127.0.0.1:8081:8081") {
		t.Errorf("the admin port is not kept to the host's loopback: %v", node.Ports)
	}
	sink, ok := doc.Services["sink"]
	if !ok || sink.Image != node.Image {
		t.Fatalf("no demo sink on the same image: %+v", sink)
	}
	checkCommandLine(t, "compose sink", sink.Command)
	if !slices.Contains(node.DependsOn, "sink") {
		t.Errorf("webhookops does not depend on the sink")
	}

	// The embedded config is valid and its destination is the sink.
	if len(node.Configs) != 1 || !slices.Contains(node.Command, node.Configs[0].Target) {
		t.Fatalf("configs %+v not passed to --config in %v", node.Configs, node.Command)
	}
	content := doc.Configs[node.Configs[0].Source].Content
	p := filepath.Join(t.TempDir(), "webhookops.yaml")
	os.WriteFile(p, []byte(content), 0o600)
	file, err := config.Load(p)
	if err != nil {
		t.Fatalf("the demo config does not load: %v", err)
	}
	if len(file.Destinations) != 1 || !strings.HasPrefix(file.Destinations[0].URL, "http://sink:3000/") {
		t.Fatalf("demo destinations %+v", file.Destinations)
	}
}

// instruction is one line of a Dockerfile, continuation lines joined.
type instruction struct {
	cmd, args string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// TestDockerfile: a multi-stage build of a CGO_ENABLED=0 binary into an
// empty image, run as a non-root user with the data dir as a volume and
// /readyz as the health check.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "Dockerfile")
	var froms, runs []string
	final := map[string][]string{} // instructions of the last stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in.args)
			final = map[string][]string{}
		}
		if in.cmd == "RUN" {
			runs = append(runs, in.args)
		}
		final[in.cmd] = append(final[in.cmd], in.args)
	}
	if len(froms) < 2 || froms[len(froms)-1] != "scratch" {
		t.Fatalf("stages %v: want a build stage and a scratch image", froms)
	}
	if !strings.HasPrefix(froms[0], "golang:"+strings.TrimPrefix(runtime.Version(), "go")[:4]) {
		t.Errorf("build stage %q does not use this Go (%s)", froms[0], runtime.Version())
	}
	build := strings.Join(runs, "\n")
	for _, want := range []string{"CGO_ENABLED=0 go build", "./cmd/webhookops", "-X main.version=", "chown 65532:65532"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage lacks %q:\n%s", want, build)
		}
	}
	if u := final["USER"]; len(u) != 1 || strings.HasPrefix(u[0], "0") || strings.HasPrefix(u[0], "root") {
		t.Errorf("final stage user %v, want an unprivileged one", u)
	}
	if v := final["VOLUME"]; len(v) != 1 || !strings.Contains(v[0], `"/data"`) {
		t.Errorf("volume %v", v)
	}
	var entry, cmd, health []string
	json.Unmarshal([]byte(strings.Join(final["ENTRYPOINT"], "")), &entry)
	json.Unmarshal([]byte(strings.Join(final["CMD"], "")), &cmd)
	hc := strings.Join(final["HEALTHCHECK"], "")
	if i := strings.Index(hc, "CMD "); i >= 0 {
		json.Unmarshal([]byte(hc[i+4:]), &health)
	}
	if !slices.Equal(entry, []string{"/webhookops"}) || !slices.Equal(health, []string{"/webhookops", "health"}) {
		t.Fatalf("entrypoint %v, health check %v", entry, health)
	}
	checkCommandLine(t, "Dockerfile CMD", cmd)
	checkCommandLine(t, "Dockerfile HEALTHCHECK", health[1:])
	env := map[string]string{}
	for _, e := range final["ENV"] {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	checkEnv(t, "Dockerfile ENV", env)
	if env["WEBHOOKOPS_DATA_DIR"] != "/data" {
		t.Errorf("data dir %q, want the volume /data", env["WEBHOOKOPS_DATA_DIR"])
	}
	if ignore, err := os.ReadFile("Dockerfile.dockerignore"); err != nil || !strings.Contains(string(ignore), "**/data") {
		t.Errorf("Dockerfile.dockerignore does not keep data dirs out of the context: %v", err)
	}
}

// TestSystemdUnit: the unit runs serve with flags that exist, sandboxed
// (DynamicUser, StateDirectory as the data dir, ProtectSystem=strict), and
// stops with SIGTERM leaving time for the drain.
func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("webhookops.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("webhookops.service:%d: not key=value in a section: %q", n, line)
			}
			unit[section][strings.TrimSpace(k)] = append(unit[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	svc := unit["Service"]
	one := func(k string) string {
		if len(svc[k]) != 1 {
			t.Errorf("[Service] %s set %d times", k, len(svc[k]))
			return ""
		}
		return svc[k][0]
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "webhookops", "ProtectSystem": "strict",
		"KillSignal": "SIGTERM", "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectHome": "yes",
	} {
		if got := one(k); got != want {
			t.Errorf("[Service] %s=%q, want %q", k, got, want)
		}
	}
	stop, err := time.ParseDuration(one("TimeoutStopSec"))
	if err != nil || stop < 10*time.Second+10*time.Second {
		t.Errorf("TimeoutStopSec=%q: must leave the drain (10 s) and the server shutdown (10 s) their time", one("TimeoutStopSec"))
	}
	argv := strings.Fields(one("ExecStart"))
	if len(argv) < 2 || !filepath.IsAbs(argv[0]) || filepath.Base(argv[0]) != "webhookops" {
		t.Fatalf("ExecStart %v", argv)
	}
	checkCommandLine(t, "ExecStart", argv[1:])
	if i := slices.Index(argv, "--data-dir"); i < 0 || argv[i+1] != "/var/lib/"+one("StateDirectory") {
		t.Errorf("ExecStart %v does not keep the data dir in StateDirectory", argv)
	}
	env := map[string]string{}
	for _, e := range svc["Environment"] {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	checkEnv(t, "Environment=", env)
	if got := unit["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("WantedBy %v", got)
	}
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command(sa, "verify", "webhookops.service").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "/usr/local/bin/webhookops") { // not installed here
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
}

// TestVersionAndCompletion: `webhookops version` reports the module
// version, the commit it was built from and the Go version; `completion`
// prints scripts for bash, zsh and fish; the program answers completion
// requests with its commands and flags.
func TestVersionAndCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	paths := buildCommands(t, "webhookops", "webhookops-stamped")
	bin := paths[0]
	run := func(args ...string) string {
		t.Helper()
		out, ok := runCLI(t, bin, nil, args...)
		if !ok {
			t.Fatalf("%v: %s", args, out)
		}
		return out
	}
	out := run("version", "--json")
	var bi buildInfo
	if err := json.Unmarshal([]byte(out), &bi); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	if bi.GoVersion != runtime.Version() || bi.Version == "" || bi.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("version: %+v", bi)
	}
	// Go stamps the commit only where the build may read the VCS
	// (GOFLAGS=-buildvcs=false here, and in container builds): then it
	// must be the checkout's.
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && bi.Commit != "" {
		if want := strings.TrimSpace(string(head)); bi.Commit != want {
			t.Fatalf("version says commit %q, the checkout is at %q", bi.Commit, want)
		}
	}
	// What a release or image build stamps with -ldflags -X.
	out, ok := runCLI(t, paths[1], nil, "version")
	if !ok || !strings.Contains(out, "webhookops v1.2.3-test\n") || !strings.Contains(out, "commit     0123456789abcdef0123456789abcdef01234567") {
		t.Fatalf("stamped version:\n%s", out)
	}
	text := run("version")
	if !strings.Contains(text, "webhookops "+bi.Version) || !strings.Contains(text, runtime.Version()) || (bi.Commit != "" && !strings.Contains(text, bi.Commit)) {
		t.Fatalf("version:\n%s", text)
	}
	if v := run("--version"); !strings.Contains(v, bi.Version) {
		t.Fatalf("--version: %s", v)
	}

	for shell, want := range map[string]string{
		"bash": "complete -o bashdefault -o default -F _webhookops_complete webhookops",
		"zsh":  "#compdef webhookops",
		"fish": "complete -c webhookops",
	} {
		if s := run("completion", shell); !strings.Contains(s, want) {
			t.Errorf("completion %s lacks %q:\n%s", shell, want, s)
		}
	}
	if out, ok := runCLI(t, bin, nil, "completion", "tcsh"); ok {
		t.Errorf("completion tcsh succeeded: %s", out)
	}
	cmds := strings.Fields(run("--generate-bash-completion"))
	for _, c := range []string{"serve", "backup", "restore", "version", "completion", "health", "sink", "events"} {
		if !slices.Contains(cmds, c) {
			t.Errorf("completion of commands lacks %s: %v", c, cmds)
		}
	}
	if flags := run("serve", "--acme", "--generate-bash-completion"); !strings.Contains(flags, "--acme-domain") || strings.Contains(flags, "--data-dir") {
		t.Errorf("completion of serve --acme: %q", flags)
	}
	if flags := run("backup", "--inc", "--generate-bash-completion"); !strings.Contains(flags, "--include-secret-key") {
		t.Errorf("completion of backup --inc: %q", flags)
	}
}
