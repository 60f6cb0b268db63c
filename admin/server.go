package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/refusals"
	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal"
)

// AgentStatus tells the admin API which agents are connected. The tunnel
// server implements it; nil means nothing is known (every agent reads as
// offline). Online must be cheap: /metrics calls it on every scrape.
type AgentStatus interface {
	Online(agentID string) (online bool, lastSeen time.Time)
}

// TunnelInfo is what an agent needs to reach the node.
type TunnelInfo struct {
	Addr        string // host:port agents dial
	Fingerprint string // sha256:HEX of the tunnel certificate, pinned by agentd
}

// Config configures the admin server. A zero field means the default.
type Config struct {
	Node   *actors.Node
	Logger *slog.Logger
	// BootstrapToken, when set, is an admin token held only in memory
	// (--admin-token). When empty and the store holds no token, the
	// server creates one; InitialToken returns it once. On a cluster
	// member it is created once the member has caught up with the
	// metadata shard, if the cluster holds no token then, and handed to
	// OnInitialToken instead.
	BootstrapToken string
	OnInitialToken func(token string)
	// MetricsPublic serves /metrics without a token.
	MetricsPublic bool
	// Agents reports agent connections; nil is "unknown".
	Agents AgentStatus
	// Tunnel, when the node runs one, is put into the agentd command
	// line the answers that create an agent or rotate its secret carry.
	Tunnel *TunnelInfo
	// Cluster reports the cluster when the node is a member; nil on a
	// single node (GET /api/v1/cluster answers 404 not_clustered).
	Cluster func(context.Context) (api.ClusterStatus, error)
	// ClusterPartitions reports the partitions as this node sees them,
	// asking no other member: raft metrics per partition on /metrics.
	ClusterPartitions func() ([]api.ClusterPartition, error)
	// ClusterMetadata reports the metadata shard as this node sees it,
	// asking no other member (raft metrics of the shard on /metrics); nil
	// on a single node.
	ClusterMetadata func() (api.ClusterMetadata, error)
	// Membership adds and removes members (with Cluster; nil on a single
	// node).
	Membership Membership
	// TunnelMembers reads the cluster's tunnel directory (with Cluster
	// and Tunnel; nil on a single node): enrollment names every member's
	// tunnel, and agents and forwards show their state on each member.
	TunnelMembers func(context.Context) ([]TunnelMember, error)
	// Peers reach the other members' admin APIs (with Cluster): a replay
	// asked of this member is carried out by the members that deliver its
	// destinations (serve gives every member one: the URLs come from the
	// metadata shard's member records). Nil: a member refuses (409
	// elsewhere) a replay of a destination it does not deliver.
	Peers *Peers
	// MetricsCacheFor is how long a scrape's queue and dead-letter counts
	// are reused; zero is 5 s.
	MetricsCacheFor time.Duration
	// Version is the binary's version, recorded in backups.
	Version string
	// ConfigFile is the --config file the node was started with; backups
	// carry a copy.
	ConfigFile string
}

// access is what a route requires.
type access int

const (
	public    access = iota // no token
	readOnly                // any valid token
	adminOnly               // an admin token
)

type handler func(r *http.Request, ps httprouter.Params, p principal) (int, any, error)

type route struct {
	method, path string
	access       access
	h            handler
	raw          http.Handler
}

// Server is the admin HTTP handler.
type Server struct {
	cfg    Config
	node   *actors.Node
	db     *wal.DB
	log    *slog.Logger
	router *httprouter.Router
	routes []route
	reg    *prometheus.Registry
	tokens *tokenSet

	initialMu    sync.Mutex
	initialToken string     // guarded by initialMu; handed out once
	authMu       sync.Mutex // guards authLast
	authLast     time.Time  // the last authCatchUp
	// initialDone is closed when initialTokenLater (a cluster member's)
	// returned; nil when it never ran. stop ends it.
	initialDone chan struct{}
	stop        chan struct{}

	// cfgMu makes an existence check and the Apply after it one step, so
	// two creates of one slug cannot both succeed.
	cfgMu sync.Mutex

	backupMu sync.Mutex // held while a backup streams: one at a time

	rollups *rollups
	openapi []byte
	logins  *LoginLimiter // slows repeated bad tokens per client address

	closeOnce sync.Once
}

// New builds the admin handler, loads the tokens (creating the first one if
// there is none and no bootstrap token) and registers the node's metrics.
func New(cfg Config) (*Server, error) {
	if cfg.Node == nil {
		return nil, errors.New("admin: Config.Node is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MetricsCacheFor == 0 {
		cfg.MetricsCacheFor = 5 * time.Second
	}
	s := &Server{
		cfg:    cfg,
		node:   cfg.Node,
		db:     cfg.Node.DB(),
		log:    cfg.Logger,
		router: httprouter.New(),
		reg:    prometheus.NewRegistry(),
		stop:   make(chan struct{}),
	}
	s.logins = NewLoginLimiter(s.now)
	if cfg.BootstrapToken != "" {
		if err := CheckBootstrapToken(cfg.BootstrapToken); err != nil {
			return nil, err
		}
	}
	var err error
	if s.tokens, err = loadTokens(s.db, cfg.BootstrapToken); err != nil {
		return nil, err
	}
	s.tokens.node = cfg.Node
	switch {
	case !s.tokens.empty():
	case cfg.Node.Replicated():
		// A cluster member: tokens are the cluster's, and this member may
		// not have caught up yet (nor have a quorum to write with).
		s.initialDone = make(chan struct{})
		go s.initialTokenLater()
	default:
		secret, _, err := s.tokens.create(InitialTokenName, RoleAdmin, "system", s.now())
		if err != nil {
			return nil, err
		}
		s.initialToken = secret
	}
	if err := cfg.Node.Metrics().Register(s.reg); err != nil {
		return nil, err
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), cfg.Node.Refusals())
	if s.rollups, err = newRollups(s.db, cfg.Node.Metrics().Totals, s.now); err != nil {
		return nil, err
	}
	s.reg.MustRegister(newStateCollector(s))
	s.routesTable()
	if s.openapi, err = buildOpenAPI(s); err != nil {
		return nil, err
	}
	s.rollups.start()
	s.router.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFound("no route %s %s; see %s/openapi.json", r.Method, r.URL.Path, APIPrefix))
	})
	s.router.HandleMethodNotAllowed = true
	s.router.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path})
	})
	s.router.PanicHandler = func(w http.ResponseWriter, r *http.Request, v any) {
		s.log.Error("admin handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
		writeError(w, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"})
	}
	return s, nil
}

// InitialToken returns the token created on first start, once; later calls
// return "". The caller prints it: it is never stored in clear.
func (s *Server) InitialToken() string {
	s.initialMu.Lock()
	defer s.initialMu.Unlock()
	t := s.initialToken
	s.initialToken = ""
	return t
}

// Close stops the rollup writer. Idempotent. Replays run in the node and
// stop with it.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		if s.initialDone != nil {
			<-s.initialDone
		}
		s.rollups.close()
	})
}

// initialTokenLater creates the initial token on a cluster member, once
// it has caught up with the metadata shard, if the cluster holds no token
// then; another member that made one first wins. It retries every second
// while no quorum answers, until Close.
func (s *Server) initialTokenLater() {
	defer close(s.initialDone)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.node.CatchUpConfig(ctx)
		cancel()
		if err == nil {
			if !s.tokens.empty() {
				return
			}
			secret, _, err := s.tokens.create(InitialTokenName, RoleAdmin, "system", s.now())
			var ae *Error
			switch {
			case err == nil:
				if s.cfg.OnInitialToken != nil {
					s.cfg.OnInitialToken(secret)
				}
				return
			case errors.Is(err, actors.ErrConflict), errors.As(err, &ae) && ae.Status == http.StatusConflict:
				return
			}
			s.log.Debug("initial token: not created yet", "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

func (s *Server) now() time.Time { return s.node.Clock().Now().UTC() }

// Route is one method and path the server answers, for tests and the
// OpenAPI check.
type Route struct {
	Method, Path string
	Public       bool
	AdminOnly    bool
}

// Routes lists every route registered on the router.
func (s *Server) Routes() []Route {
	out := make([]Route, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, Route{Method: rt.method, Path: rt.path, Public: rt.access == public, AdminOnly: rt.access == adminOnly})
	}
	return out
}

// handle registers a route. It is the only way a route reaches the router,
// so none can skip the token check.
func (s *Server) handle(method, path string, a access, h handler) {
	s.add(route{method: method, path: path, access: a, h: h})
}

func (s *Server) add(rt route) {
	if slices.ContainsFunc(s.routes, func(o route) bool { return o.method == rt.method && o.path == rt.path }) {
		panic("admin: duplicate route " + rt.method + " " + rt.path)
	}
	s.routes = append(s.routes, rt)
	s.router.Handle(rt.method, rt.path, func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		p, ok := s.authorize(w, r, rt.access)
		if !ok {
			return
		}
		if rt.raw != nil {
			rt.raw.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := s.catchUp(r.Context()); err != nil {
				writeError(w, toError(err))
				return
			}
		}
		status, body, err := rt.h(r, ps, p)
		if err != nil {
			e := toError(err)
			// A readiness probe answering "not ready" is not a failed
			// request: the cause was logged once where it happened, and
			// probes come every few seconds.
			if e.Status >= 500 && r.URL.Path != "/readyz" {
				s.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, e)
			return
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	})
}

// catchUp, on a cluster member, waits until this member applied every
// configuration change committed so far, so a write checks what it
// changes against the latest configuration whichever member made it (one
// linearizable read of the metadata shard; nothing on a single node).
func (s *Server) catchUp(ctx context.Context) error {
	if !s.node.Replicated() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.node.CatchUpConfig(ctx)
}

// authCatchUp, on a cluster member, catches up with the metadata shard
// before an unknown token is refused, at most once per 100 ms over all
// requests (on top of the per-address limiter, so strangers' guesses cost
// at most ten linearizable reads a second). It reports whether it did.
func (s *Server) authCatchUp(ctx context.Context) bool {
	if !s.node.Replicated() {
		return false
	}
	s.authMu.Lock()
	if time.Since(s.authLast) < 100*time.Millisecond {
		s.authMu.Unlock()
		return false
	}
	s.authLast = time.Now()
	s.authMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return s.node.CatchUpConfig(ctx) == nil
}

// authorize checks the bearer token against what the route needs. A
// refusal is answered and audited here.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, a access) (principal, bool) {
	if a == public {
		return principal{name: "anonymous"}, true
	}
	tok, ok := bearer(r)
	if !ok {
		s.refuse(w, r, http.StatusUnauthorized, "unauthorized", "missing", "", "send Authorization: Bearer <token>")
		return principal{}, false
	}
	// An address past its free failures waits, whatever token it sends:
	// answering a right token here would confirm a guess.
	addr := ClientAddr(r)
	if d := s.logins.Wait(addr); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
		writeError(w, &Error{Status: http.StatusTooManyRequests, Code: "too_many_failures",
			Message: fmt.Sprintf("too many failed authentications from %s; try again in %s", addr, d.Round(time.Second))})
		return principal{}, false
	}
	p, ok := s.tokens.check(tok)
	if !ok && s.authCatchUp(r.Context()) {
		// On a cluster member, a token made on another member a moment
		// ago may not be applied here yet.
		p, ok = s.tokens.check(tok)
	}
	if !ok {
		s.logins.Failed(addr)
		s.refuse(w, r, http.StatusUnauthorized, "unauthorized", "invalid", tokenDisplayPrefix(tok), "the token is not valid (revoked, mistyped or from another node)")
		return principal{}, false
	}
	s.logins.Succeeded(addr)
	if a == adminOnly && p.role != RoleAdmin {
		s.refuse(w, r, http.StatusForbidden, "forbidden", "read_only", p.name, "token "+p.name+" is read-only")
		return principal{}, false
	}
	return p, true
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, code, reason, who, msg string) {
	s.auditRefusal(r, reason, who)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="webhookops"`)
	}
	writeError(w, &Error{Status: status, Code: code, Message: msg})
}

// auditRefusal tallies an auth.rejected entry: refusals come as fast as a
// client likes, so the node writes one row per token and reason per
// interval (actors.Node.Rejected), never one per request.
func (s *Server) auditRefusal(r *http.Request, reason, who string) {
	s.node.Rejected(refusals.Rejection{Action: "auth.rejected", ObjectType: "token", ObjectID: who, Reason: reason,
		Message: r.Method + " " + r.URL.Path, RemoteAddr: r.RemoteAddr})
}

// routesTable registers every route. The OpenAPI document (openapi.go)
// lists them again by hand; a test fails if the two disagree.
func (s *Server) routesTable() {
	s.handle(http.MethodGet, "/healthz", public, func(*http.Request, httprouter.Params, principal) (int, any, error) {
		return http.StatusOK, map[string]string{"status": "ok"}, nil
	})
	s.handle(http.MethodGet, "/readyz", public, func(*http.Request, httprouter.Params, principal) (int, any, error) {
		if !s.node.Ready() {
			return 0, nil, &Error{Status: http.StatusServiceUnavailable, Code: "not_ready", Message: "the node is starting or stopping"}
		}
		if err := s.node.DB().Accepting(); err != nil {
			return 0, nil, &Error{Status: http.StatusServiceUnavailable, Code: "storage_unavailable", Message: err.Error()}
		}
		return http.StatusOK, map[string]string{"status": "ready"}, nil
	})
	metricsAccess := readOnly
	if s.cfg.MetricsPublic {
		metricsAccess = public
	}
	s.add(route{method: http.MethodGet, path: "/metrics", access: metricsAccess,
		raw: promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})})

	p := APIPrefix
	s.handle(http.MethodGet, p+"/openapi.json", readOnly, s.getOpenAPI)

	s.handle(http.MethodGet, p+"/sources", readOnly, s.listSources)
	s.handle(http.MethodPost, p+"/sources", adminOnly, s.createSource)
	s.handle(http.MethodGet, p+"/sources/:slug", readOnly, s.getSource)
	s.handle(http.MethodPut, p+"/sources/:slug", adminOnly, s.updateSource)
	s.handle(http.MethodDelete, p+"/sources/:slug", adminOnly, s.deleteSource)
	s.handle(http.MethodPost, p+"/sources/:slug/secrets", adminOnly, s.rotateSourceSecret)
	s.handle(http.MethodDelete, p+"/sources/:slug/secrets/:secret_id", adminOnly, s.removeSourceSecret)

	s.handle(http.MethodGet, p+"/destinations", readOnly, s.listDestinations)
	s.handle(http.MethodPost, p+"/destinations", adminOnly, s.createDestination)
	s.handle(http.MethodGet, p+"/destinations/:slug", readOnly, s.getDestination)
	s.handle(http.MethodPut, p+"/destinations/:slug", adminOnly, s.updateDestination)
	s.handle(http.MethodDelete, p+"/destinations/:slug", adminOnly, s.deleteDestination)
	s.handle(http.MethodPost, p+"/destinations/:slug/pause", adminOnly, s.pauseDestination)
	s.handle(http.MethodPost, p+"/destinations/:slug/resume", adminOnly, s.resumeDestination)
	s.handle(http.MethodPost, p+"/destinations/:slug/signing-secret", adminOnly, s.rotateSigningSecret)
	s.handle(http.MethodGet, p+"/destinations/:slug/dead-letters", readOnly, s.listDeadLetters)
	s.handle(http.MethodPost, p+"/destinations/:slug/dead-letters/redrive", adminOnly, s.redrive)

	s.handle(http.MethodGet, p+"/agents", readOnly, s.listAgents)
	s.handle(http.MethodPost, p+"/agents", adminOnly, s.createAgent)
	s.handle(http.MethodGet, p+"/agents/:id", readOnly, s.getAgent)
	s.handle(http.MethodPut, p+"/agents/:id", adminOnly, s.updateAgent)
	s.handle(http.MethodDelete, p+"/agents/:id", adminOnly, s.deleteAgent)
	s.handle(http.MethodPost, p+"/agents/:id/secret", adminOnly, s.rotateAgentSecret)
	s.handle(http.MethodPost, p+"/agents/:id/enrollment", adminOnly, s.enrollAgent)

	// :listen is host:port, URL-escaped by clients (the router matches the
	// decoded path, so a '/' in it could never be reached: none is valid).
	s.handle(http.MethodGet, p+"/forwards", readOnly, s.listForwards)
	s.handle(http.MethodPost, p+"/forwards", adminOnly, s.createForward)
	s.handle(http.MethodGet, p+"/forwards/:listen", readOnly, s.getForward)
	s.handle(http.MethodDelete, p+"/forwards/:listen", adminOnly, s.deleteForward)

	s.handle(http.MethodGet, p+"/events", readOnly, s.listEvents)
	s.handle(http.MethodGet, p+"/events/:id", readOnly, s.getEvent)
	s.handle(http.MethodPost, p+"/events/:id/replay", adminOnly, s.replayEvent)

	s.handle(http.MethodGet, p+"/replays", readOnly, s.listReplays)
	s.handle(http.MethodPost, p+"/replays", adminOnly, s.createReplay)
	s.handle(http.MethodGet, p+"/replays/:id", readOnly, s.getReplay)

	s.handle(http.MethodGet, p+"/cluster", readOnly, s.getCluster)
	s.handle(http.MethodPost, p+"/cluster/nodes", adminOnly, s.addClusterNode)
	s.handle(http.MethodDelete, p+"/cluster/nodes/:id", adminOnly, s.removeClusterNode)
	s.handle(http.MethodGet, p+"/cluster/replays", readOnly, s.listReplayParts)
	s.handle(http.MethodPost, p+"/cluster/replays", adminOnly, s.startReplayPart)
	s.handle(http.MethodGet, p+"/cluster/replays/:id", readOnly, s.getReplayPart)

	s.handle(http.MethodGet, p+"/audit", readOnly, s.listAudit)

	s.add(route{method: http.MethodPost, path: p + "/backup", access: adminOnly, raw: http.HandlerFunc(s.postBackup)})
	s.handle(http.MethodGet, p+"/stats/minutes", readOnly, s.listMinutes)

	s.handle(http.MethodGet, p+"/tokens", adminOnly, s.listTokens)
	s.handle(http.MethodPost, p+"/tokens", adminOnly, s.createToken)
	s.handle(http.MethodDelete, p+"/tokens/:name", adminOnly, s.revokeToken)
}

func (s *Server) getOpenAPI(*http.Request, httprouter.Params, principal) (int, any, error) {
	return http.StatusOK, rawJSON(s.openapi), nil
}

// rawJSON is a pre-encoded JSON answer.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func (s *Server) listTokens(*http.Request, httprouter.Params, principal) (int, any, error) {
	return http.StatusOK, newPage(s.tokens.all(), ""), nil
}

func (s *Server) createToken(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	var req api.TokenRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Role == "" {
		req.Role = RoleAdmin
	}
	secret, tok, err := s.tokens.create(req.Name, req.Role, p.actor(), s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, CreatedToken{Token: tok.Wire(), Secret: secret}, nil
}

func (s *Server) revokeToken(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	if err := s.tokens.revoke(ps.ByName("name"), p.actor(), s.now()); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
