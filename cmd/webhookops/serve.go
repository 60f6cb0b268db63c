package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/agentreg"
	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/actors/refusals"
	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/config"
	"github.com/webhookops/webhookops/admin/ui"
	"github.com/webhookops/webhookops/ingress"
	"github.com/webhookops/webhookops/tunnelproto"
	"github.com/webhookops/webhookops/wal"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run a node: ingest on --ingest-addr, admin API on --admin-addr",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "data-dir", Value: "./data", EnvVars: []string{"WEBHOOKOPS_DATA_DIR"}, Usage: "where events and state are stored"},
			&cli.StringFlag{Name: "ingest-addr", Value: ":8080", EnvVars: []string{"WEBHOOKOPS_INGEST_ADDR"}, Usage: "address for POST /in/{source}"},
			&cli.StringFlag{Name: "admin-addr", Value: "127.0.0.1:8081", EnvVars: []string{"WEBHOOKOPS_ADMIN_ADDR"}, Usage: "address for the admin API, /metrics, /healthz, /readyz"},
			&cli.StringFlag{Name: "config", EnvVars: []string{"WEBHOOKOPS_CONFIG"}, Usage: "YAML file of sources, destinations, agents and forwards, applied at start"},
			&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"WEBHOOKOPS_LOG_FORMAT"}, Usage: "text or json"},
			&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"WEBHOOKOPS_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
			&cli.Int64Flag{Name: "max-body", Value: ingress.DefaultMaxBody, EnvVars: []string{"WEBHOOKOPS_MAX_BODY"}, Usage: "largest webhook body accepted, in bytes"},
			&cli.Int64Flag{Name: "max-inflight-bytes", Value: ingress.DefaultMaxInFlight, EnvVars: []string{"WEBHOOKOPS_MAX_INFLIGHT_BYTES"}, Usage: "cap on bytes of webhook bodies held in memory at once; past it ingest answers 503 with Retry-After"},
			&cli.Int64Flag{Name: "min-free-bytes", Value: wal.DefaultMinFree, EnvVars: []string{"WEBHOOKOPS_MIN_FREE_BYTES"}, Usage: "free-space floor on the data dir's disk: below it ingest answers 503 with Retry-After and /readyz fails, until space is freed; -1 turns it off"},
			&cli.Int64Flag{Name: "disk-ballast-bytes", Value: wal.DefaultBallast, EnvVars: []string{"WEBHOOKOPS_DISK_BALLAST_BYTES"}, Usage: "size of <data-dir>/ballast, a file given back to the store on its first out-of-space error; -1 for none"},
			&cli.IntFlag{Name: "max-connections", Value: ingress.DefaultMaxConns, EnvVars: []string{"WEBHOOKOPS_MAX_CONNECTIONS"}, Usage: "cap on open ingest connections; one over it is answered 503 and closed"},
			&cli.DurationFlag{Name: "dedupe-window", Value: 72 * time.Hour, EnvVars: []string{"WEBHOOKOPS_DEDUPE_WINDOW"}, Usage: "how long an idempotency key is remembered"},
			&cli.DurationFlag{Name: "retention", Value: 30 * 24 * time.Hour, EnvVars: []string{"WEBHOOKOPS_RETENTION"}, Usage: "how long finished events are kept (at least the dedupe window); pending ones are kept until they finish"},
			&cli.DurationFlag{Name: "audit-retention", Value: 90 * 24 * time.Hour, EnvVars: []string{"WEBHOOKOPS_AUDIT_RETENTION"}, Usage: "how long audit entries are kept; swept hourly with events"},
			&cli.DurationFlag{Name: "refusal-retention", Value: 7 * 24 * time.Hour, EnvVars: []string{"WEBHOOKOPS_REFUSAL_RETENTION"}, Usage: "how long refusal rows (tallies of bad signatures, refused agent handshakes, bad admin tokens) are kept; never longer than --audit-retention; swept hourly with events"},
			&cli.IntFlag{Name: "ordered-pipeline", Value: actors.DefaultConfig().OrderedPipeline, EnvVars: []string{"WEBHOOKOPS_ORDERED_PIPELINE"}, Usage: "how many events an ordered destination may have sent (or handed to its sending loop) with their outcome not yet on disk; a crash re-sends at most that many, same webhook-id. 1 writes each outcome before the next event goes. On a cluster member an outcome is durable once its partition committed it, and a failover re-sends at most that many"},
			&cli.DurationFlag{Name: "drain-timeout", Value: 10 * time.Second, EnvVars: []string{"WEBHOOKOPS_DRAIN_TIMEOUT"}, Usage: "on shutdown, how long in-flight attempts may finish"},
			&cli.StringFlag{Name: "admin-token", EnvVars: []string{"WEBHOOKOPS_ADMIN_TOKEN"}, Usage: "an admin API token held only in memory (for automation): at least 32 characters with at least 10 distinct ones, no spaces (`openssl rand -base64 32` makes one); weaker ones are refused. Without it and without stored tokens, the first start creates one and prints it once"},
			&cli.StringFlag{Name: "public-url", EnvVars: []string{"WEBHOOKOPS_PUBLIC_URL"}, Usage: "the ingest base URL providers reach (https://hooks.example.com); the UI shows each source's URL under it (default: http:// and the ingest address)"},
			&cli.BoolFlag{Name: "metrics-public", EnvVars: []string{"WEBHOOKOPS_METRICS_PUBLIC"}, Usage: "serve /metrics without a token"},
			&cli.StringFlag{Name: "cpu-profile", EnvVars: []string{"WEBHOOKOPS_CPU_PROFILE"}, Usage: "write a CPU profile of the whole run to this file (for go tool pprof)"},
			&cli.StringFlag{Name: "tunnel-addr", EnvVars: []string{"WEBHOOKOPS_TUNNEL_ADDR"}, Usage: "address where agents dial in, e.g. :9700: UDP for QUIC and TCP (same port) for agents whose network blocks UDP; empty turns private delivery and forwards off"},
			&cli.StringFlag{Name: "tunnel-public-addr", EnvVars: []string{"WEBHOOKOPS_TUNNEL_PUBLIC_ADDR"}, Usage: "host:port agents should dial, as printed by enrollment (default: this host's name and the tunnel port)"},
			&cli.StringFlag{Name: "tunnel-cert", EnvVars: []string{"WEBHOOKOPS_TUNNEL_CERT"}, Usage: "PEM certificate for the tunnel (default: generated into the data dir)"},
			&cli.StringFlag{Name: "tunnel-key", EnvVars: []string{"WEBHOOKOPS_TUNNEL_KEY"}, Usage: "PEM key for --tunnel-cert"},
			&cli.IntFlag{Name: "tunnel-max-unauthenticated", Value: tunnelproto.DefaultServerConfig().MaxPending, EnvVars: []string{"WEBHOOKOPS_TUNNEL_MAX_UNAUTHENTICATED"}, Usage: "cap on tunnel connections not yet authenticated (each for at most 10 s), in total; one over it is closed at once"},
			&cli.IntFlag{Name: "tunnel-max-unauthenticated-per-ip", Value: tunnelproto.DefaultServerConfig().MaxPendingPerAddr, EnvVars: []string{"WEBHOOKOPS_TUNNEL_MAX_UNAUTHENTICATED_PER_IP"}, Usage: "cap on tunnel connections not yet authenticated from one source address; one over it is closed at once"},
		}, append(tlsFlags(), clusterFlags()...)...),
		Action: serve,
	}
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	switch format {
	case "text":
		return slog.New(tint.NewTextHandler(os.Stderr, &tint.Options{Level: lv, TimeFormat: time.TimeOnly, NoColor: !stderrColor()})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv})), nil
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", format)
	}
}

func serve(c *cli.Context) error {
	log, err := newLogger(c.String("log-format"), c.String("log-level"))
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	if path := c.String("cpu-profile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	// Read the config file before touching the data dir: a bad file
	// changes nothing.
	var file *config.File
	if path := c.String("config"); path != "" {
		if file, err = config.Load(path); err != nil {
			return err
		}
	}

	if c.Int64("max-inflight-bytes") < c.Int64("max-body") {
		return fmt.Errorf("--max-inflight-bytes (%d) must be at least --max-body (%d)", c.Int64("max-inflight-bytes"), c.Int64("max-body"))
	}
	for _, f := range []string{"max-connections", "tunnel-max-unauthenticated", "tunnel-max-unauthenticated-per-ip", "ordered-pipeline"} {
		if c.Int(f) < 1 {
			return fmt.Errorf("--%s must be at least 1", f)
		}
	}
	// Catch SIGTERM from here on: one that arrives while the node starts
	// (systemd stopping it, a test right after /readyz) stops it gracefully
	// once it is up, instead of killing it between two writes.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	tlsCfg, err := setupTLS(tlsSettings(c), c.String("data-dir"), log)
	if err != nil {
		return err
	}

	rawIngestLn, err := net.Listen("tcp", c.String("ingest-addr"))
	if err != nil {
		return fmt.Errorf("--ingest-addr: %w", err)
	}
	// A refusal over the cap is a plain-HTTP 503 only on a clear listener;
	// inside TLS it would be garbage, so there the connection just closes.
	ingestLn := ingress.LimitListener(rawIngestLn, c.Int("max-connections"), tlsCfg.ingest == nil)
	defer ingestLn.Close()
	adminLn, err := net.Listen("tcp", c.String("admin-addr"))
	if err != nil {
		return fmt.Errorf("--admin-addr: %w", err)
	}
	defer adminLn.Close()

	member, err := clusterMode(c)
	if err != nil {
		return err
	}
	walCfg := wal.Config{Logger: log, MinFreeBytes: c.Int64("min-free-bytes"), BallastBytes: c.Int64("disk-ballast-bytes")}
	if member {
		walCfg.Partitions = c.Int("cluster-partitions") // for a new data dir
	}
	db, err := wal.Open(c.String("data-dir"), walCfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := prepareStore(c, db, member); err != nil {
		return err
	}

	// The tunnel binds before the node: delivery dials through it and
	// configuration changes reach it; it serves agents once the node has
	// loaded the configuration.
	// One tally of refused requests (bad signatures, tokens, agent proofs)
	// for the node and the tunnel, so their audit rows share one bound.
	tally := refusals.Start(db, 0, log)
	defer tally.Close()
	tunnel, err := newTunnel(c, db, log, tally, member)
	if err != nil {
		return err
	}
	nodeCfg := actors.Config{
		DB:               db,
		Logger:           log,
		DedupeWindow:     c.Duration("dedupe-window"),
		Retention:        c.Duration("retention"),
		AuditRetention:   c.Duration("audit-retention"),
		RefusalRetention: c.Duration("refusal-retention"),
		Refusals:         tally,
		DrainTimeout:     c.Duration("drain-timeout"),
		OrderedPipeline:  c.Int("ordered-pipeline"),
		Member:           member,
	}
	dial := agentreg.DialTunnelOff
	if tunnel != nil {
		defer tunnel.agents.Close()
		dial = tunnel.agents.Dial
		nodeCfg.OnChange = func(_, next *actors.Snapshot) { tunnel.agents.SetConfig(next.Agents, next.Forwards) }
	}
	client := delivery.NewClient(delivery.Options{UserAgent: "webhookops/" + version, AgentDial: dial})
	defer client.CloseIdle()
	nodeCfg.Deliverer = client
	start := time.Now()
	node, err := actors.Start(nodeCfg)
	if err != nil {
		return err
	}
	defer node.Close()
	if tunnel != nil {
		snap := node.Snapshot()
		tunnel.agents.SetConfig(snap.Agents, snap.Forwards)
	}
	var fileChange *actors.Change
	if file != nil && member {
		// A member proposes the file to the metadata shard once it runs
		// (proposeFile); a file the configuration here refuses stops it
		// now.
		fileChange = &actors.Change{
			Sources: file.Sources, Destinations: file.Destinations, Agents: file.Agents, Forwards: file.Forwards,
			Actor: "config:" + c.String("config"), KeepAgentSecrets: true,
		}
		if _, err := node.WouldChange(*fileChange); err != nil {
			return fmt.Errorf("%s: %w", c.String("config"), err)
		}
		file = nil
	}
	if file != nil {
		err := node.Apply(actors.Change{
			Sources: file.Sources, Destinations: file.Destinations, Agents: file.Agents, Forwards: file.Forwards,
			Actor: "config:" + c.String("config"), KeepAgentSecrets: true,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", c.String("config"), err)
		}
		// Parsing and applying a large file leaves garbage many times the
		// size of what it configured; hand it back to the OS now rather
		// than carry it as resident memory while idle.
		file = nil
		if err := db.Flush(); err != nil {
			return err
		}
		// Twice: sync.Pools (Pebble's WAL block pool among them) keep their
		// contents through one collection.
		runtime.GC()
		debug.FreeOSMemory()
	}
	if tunnel != nil {
		tunnel.agents.Start()
	}
	cm, err := startCluster(c, node, db, log, adminLn.Addr(), tlsCfg.admin != nil)
	if err != nil {
		return err
	}
	var memberFailed <-chan error
	if cm != nil {
		defer cm.Close()
		memberFailed = cm.cl.Failed()
		if tunnel != nil {
			cm.reportTunnel(tunnel, log)
		}
		if fileChange != nil {
			cm.proposeFile(*fileChange, c.String("config"))
		}
	}
	admCfg := admin.Config{
		Node: node, Logger: log,
		BootstrapToken: c.String("admin-token"), MetricsPublic: c.Bool("metrics-public"),
		Version: version, ConfigFile: absPath(c.String("config")),
	}
	if tunnel != nil {
		admCfg.Agents = tunnel.agents // agents online in the API and /metrics
		admCfg.Tunnel = &admin.TunnelInfo{Addr: tunnel.publicAddr, Fingerprint: tunnel.agents.Fingerprint()}
	}
	if cm != nil {
		admCfg.OnInitialToken = func(tok string) {
			fmt.Fprintf(os.Stderr, "\nNew cluster: created admin API token %q for every member (shown only now, store it safely):\n\n    %s\n\n", admin.InitialTokenName, tok)
		}
		admCfg.Cluster = cm.status
		admCfg.ClusterPartitions = cm.partitions
		admCfg.ClusterMetadata = cm.metadata
		admCfg.Membership = cm
		if tunnel != nil {
			admCfg.TunnelMembers = cm.tunnelMembers
		}
		if admCfg.Peers, err = memberPeers(c, cm.adminURLs); err != nil {
			return err
		}
	}
	adm, err := admin.New(admCfg)
	if err != nil {
		return err
	}
	defer adm.Close()
	if tok := adm.InitialToken(); tok != "" {
		// Shown once; only its hash is stored.
		fmt.Fprintf(os.Stderr, "\nFirst start: created admin API token %q (shown only now, store it safely):\n\n    %s\n\n"+
			"Use it as WEBHOOKOPS_TOKEN for the CLI; make more with `webhookops token create`.\n\n", admin.InitialTokenName, tok)
	}
	// TLS handshake failures from scanners are routine on a public port:
	// debug, not warnings.
	httpErrLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	ingCfg := ingress.Config{Node: node, MaxBody: c.Int64("max-body"), MaxInFlight: c.Int64("max-inflight-bytes"), Logger: log}
	if cm != nil {
		ingCfg.Ingest = cm.cl.Ingest
	}
	ingestSrv := &http.Server{
		Handler:           ingress.NewHandler(ingCfg),
		TLSConfig:         tlsCfg.ingest,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    ingress.MaxHeaderBytes,
		HTTP2:             ingress.HTTP2Config(),
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          httpErrLog,
	}
	adminSrv := &http.Server{Handler: adm, TLSConfig: tlsCfg.admin, ReadHeaderTimeout: 10 * time.Second, ErrorLog: httpErrLog}

	ingestTLS, adminTLS := tlsCfg.ingest != nil, tlsCfg.admin != nil
	publicURL := c.String("public-url")
	if publicURL == "" {
		publicURL = listenerURL(ingestTLS, ingestLn, c.StringSlice("acme-domain"))
	}
	operatorUI, err := ui.New(ui.Config{Admin: adm, IngestURL: publicURL, Logger: log})
	if err != nil {
		return err
	}
	adm.MountUI(operatorUI)

	errc := make(chan error, 3)
	go func() { errc <- serveHTTP(ingestSrv, ingestLn) }()
	go func() { errc <- serveHTTP(adminSrv, adminLn) }()
	var acmeSrv *http.Server
	if tlsCfg.acmeHTTPAddr != "" {
		ln, err := net.Listen("tcp", tlsCfg.acmeHTTPAddr)
		if err != nil {
			return fmt.Errorf("--acme-http: %w", err)
		}
		acmeSrv = &http.Server{Handler: tlsCfg.acme.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: httpErrLog}
		go func() { errc <- acmeSrv.Serve(ln) }()
	}
	var warm sync.WaitGroup
	warmCtx, stopWarm := context.WithCancel(context.Background())
	defer func() { stopWarm(); warm.Wait() }()
	if tlsCfg.acme != nil {
		warmACME(warmCtx, &warm, tlsCfg.acme, ingestLn.Addr(), c.StringSlice("acme-domain"), log)
	}
	warnIfPlain(log, "ingest", ingestTLS, ingestLn, "providers such as Stripe and Shopify post only to HTTPS: use --acme-domain or --tls-cert/--tls-key, or a TLS proxy in front")
	warnIfPlain(log, "admin", adminTLS, adminLn, "tokens would cross the network in clear: use --admin-tls-cert/--admin-tls-key, or keep it on 127.0.0.1")
	snap := node.Snapshot()
	ingestURL := bindURL(ingestTLS, ingestLn)
	if len(c.StringSlice("acme-domain")) > 0 {
		ingestURL = listenerURL(ingestTLS, ingestLn, c.StringSlice("acme-domain"))
	}
	log.Info("webhookops ready",
		"ingest", ingestURL+"/in/{source}",
		"admin", bindURL(adminTLS, adminLn),
		"ui", bindURL(adminTLS, adminLn)+ui.Prefix,
		"data_dir", c.String("data-dir"),
		"sources", len(snap.Sources), "destinations", len(snap.Destinations),
		"recovery", time.Since(start).Round(time.Millisecond))

	var exitErr error // a member unfit to run stops with it
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("server failed", "err", err)
		}
	case err := <-memberFailed:
		log.Error("leaving the cluster", "err", err)
		exitErr = err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Stop accepting first, so nothing is acknowledged after the node stops.
	stopWarm()
	if acmeSrv != nil {
		acmeSrv.Shutdown(ctx)
	}
	ingestSrv.Shutdown(ctx)
	if cm != nil {
		cm.Close()
	}
	adm.Close()
	if tunnel != nil {
		tunnel.agents.Close()
	}
	node.Close()
	adminSrv.Shutdown(ctx)
	log.Info("stopped")
	return exitErr
}

func displayAddr(a net.Addr) string {
	s := a.String()
	if strings.HasPrefix(s, "[::]:") {
		return "localhost" + s[4:]
	}
	if strings.HasPrefix(s, "0.0.0.0:") {
		return "localhost" + s[7:]
	}
	return s
}

// absPath makes a flag's path absolute for records kept beyond this
// process (a backup's manifest); "" stays "".
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
