package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal/model"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/wal"
)

// maxSourceSecrets bounds how many secrets a source may hold at once
// during rotations.
const maxSourceSecrets = 8

// withSecret is the answer that creates an agent or rotates its secret.
func (s *Server) withSecret(a model.Agent, created bool) AgentOut {
	out := s.agentOut(a, nil)
	out.Secret = a.Secret
	if e := s.enrollment(a, created); e != nil {
		out.EnrollCommand = e.Command
	}
	return out
}

// secretID names a secret without revealing it.
func secretID(s string) string {
	h := sha256.Sum256([]byte("webhookops secret id\x00" + s))
	return hex.EncodeToString(h[:6])
}

func sourceOut(src model.Source, clear bool) SourceOut {
	out := SourceOut{Source: src, SecretIDs: []string{}}
	out.Secrets = slices.Clone(src.Secrets)
	for i, sec := range src.Secrets {
		out.SecretIDs = append(out.SecretIDs, secretID(sec))
		if !clear {
			out.Secrets[i] = actors.Mask(sec)
		}
	}
	return out
}

func destinationOut(d model.Destination, clear bool) DestinationOut {
	// Credentials in headers and the URL query are never shown: the
	// operator who set them has them.
	d = d.MaskCredentials()
	if !clear {
		d.SigningSecret = actors.Mask(d.SigningSecret)
	}
	// The previous secret was shown when it was current; never again.
	d.PreviousSigningSecret = actors.Mask(d.PreviousSigningSecret)
	return DestinationOut{Destination: d}
}

func (s *Server) agentOut(a model.Agent, members []TunnelMember) AgentOut {
	out := AgentOut{Agent: a, Members: agentMembers(a.ID, members)}
	out.Agent.Secret = ""
	if s.cfg.Agents != nil {
		out.Online, out.LastSeen = s.cfg.Agents.Online(a.ID)
	}
	return out
}

// apply writes one change as the principal.
func (s *Server) apply(c actors.Change, p principal) error {
	c.Actor = p.actor()
	return s.node.Apply(c)
}

// sameMasked reports whether got is what a read showed of want: a client
// that PUTs back what it GET is not changing secrets.
func sameMasked(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != actors.Mask(want[i]) && got[i] != want[i] {
			return false
		}
	}
	return true
}

// --- sources ---

func (s *Server) listSources(*http.Request, httprouter.Params, principal) (int, any, error) {
	return http.StatusOK, newPage(s.Sources(), ""), nil
}

// Sources lists the sources by slug, secrets masked.
func (s *Server) Sources() []SourceOut {
	snap := s.node.Snapshot()
	var out []SourceOut
	for _, k := range slices.Sorted(maps.Keys(snap.Sources)) {
		out = append(out, sourceOut(snap.Sources[k].Source, false))
	}
	return out
}

func (s *Server) getSource(_ *http.Request, ps httprouter.Params, _ principal) (int, any, error) {
	src, ok := s.node.Snapshot().Sources[ps.ByName("slug")]
	if !ok {
		return 0, nil, errNotFound("no source %q", ps.ByName("slug"))
	}
	return http.StatusOK, sourceOut(src.Source, false), nil
}

func (s *Server) createSource(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	var src model.Source
	if err := decodeBody(r, &src); err != nil {
		return 0, nil, err
	}
	if src.Verify != "none" && len(src.Secrets) == 0 && model.ValidSlug(src.Slug) {
		sec, err := delivery.GenerateSigningSecret()
		if err != nil {
			return 0, nil, err
		}
		src.Secrets = []string{sec}
	}
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	if _, ok := s.node.Snapshot().Sources[src.Slug]; ok {
		return 0, nil, errConflict("a source %q already exists", src.Slug)
	}
	if err := s.apply(actors.Change{Sources: []model.Source{src}, CreateOnly: true}, p); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, sourceOut(src, true), nil
}

func (s *Server) updateSource(r *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	slug := ps.ByName("slug")
	var src model.Source
	if err := decodeBody(r, &src); err != nil {
		return 0, nil, err
	}
	if err := sameKey("slug", slug, src.Slug); err != nil {
		return 0, nil, err
	}
	src.Slug = slug
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	cur, ok := s.node.Snapshot().Sources[slug]
	if !ok {
		return 0, nil, errNotFound("no source %q", slug)
	}
	switch {
	case src.Secrets == nil:
		src.Secrets = cur.Secrets
	case sameMasked(src.Secrets, cur.Secrets):
		src.Secrets = cur.Secrets
	default:
		return 0, nil, errBadRequest("validation_failed", "secrets", "secrets change only by rotation: POST %s/sources/%s/secrets, then DELETE the old one", APIPrefix, slug)
	}
	if err := s.apply(actors.Change{Sources: []model.Source{src}, UpdateOnly: true}, p); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, sourceOut(src, false), nil
}

func (s *Server) deleteSource(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	if err := s.apply(actors.Change{DeleteSources: []string{ps.ByName("slug")}}, p); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// decodeOptional decodes a body that may be empty.
func decodeOptional(r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRequestBody))
	if err != nil {
		return errBadRequest("bad_body", "", "could not read the body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return decodeJSON(body, v)
}

func (s *Server) rotateSourceSecret(r *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	var req api.SecretRequest
	if err := decodeOptional(r, &req); err != nil {
		return 0, nil, err
	}
	slug := ps.ByName("slug")
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	cur, ok := s.node.Snapshot().Sources[slug]
	if !ok {
		return 0, nil, errNotFound("no source %q", slug)
	}
	sec, err := secretOrNew(req.Secret)
	if err != nil {
		return 0, nil, err
	}
	if slices.Contains(cur.Secrets, sec) {
		return 0, nil, errConflict("the source already has this secret")
	}
	if len(cur.Secrets) >= maxSourceSecrets {
		return 0, nil, errConflict("the source already has %d secrets; remove an old one first", len(cur.Secrets))
	}
	src := cur.Source
	src.Secrets = append(slices.Clone(cur.Secrets), sec)
	rotated := wal.AuditEntry{At: s.now(), Action: "secret.rotated", ObjectType: "source", ObjectID: slug,
		Detail: map[string]string{"secret_id": secretID(sec), "secret": actors.Mask(sec), "secrets": itoa(len(src.Secrets))}}
	if err := s.apply(actors.Change{Sources: []model.Source{src}, Audit: []wal.AuditEntry{rotated}, UpdateOnly: true}, p); err != nil {
		return 0, nil, err
	}
	out := sourceOut(src, false)
	return http.StatusCreated, SecretRotation{Secret: sec, SecretID: secretID(sec), Source: &out}, nil
}

func (s *Server) removeSourceSecret(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	slug, id := ps.ByName("slug"), ps.ByName("secret_id")
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	cur, ok := s.node.Snapshot().Sources[slug]
	if !ok {
		return 0, nil, errNotFound("no source %q", slug)
	}
	i := slices.IndexFunc(cur.Secrets, func(sec string) bool { return secretID(sec) == id })
	if i < 0 {
		return 0, nil, errNotFound("source %q has no secret %q (see secret_ids)", slug, id)
	}
	if len(cur.Secrets) == 1 && cur.Verify != "none" {
		return 0, nil, errConflict("this is the source's last secret; rotate in a new one first")
	}
	src := cur.Source
	src.Secrets = slices.Delete(slices.Clone(cur.Secrets), i, i+1)
	revoked := wal.AuditEntry{At: s.now(), Action: "secret.revoked", ObjectType: "source", ObjectID: slug,
		Detail: map[string]string{"secret_id": id, "secrets": itoa(len(src.Secrets))}}
	if err := s.apply(actors.Change{Sources: []model.Source{src}, Audit: []wal.AuditEntry{revoked}, UpdateOnly: true}, p); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, sourceOut(src, false), nil
}

// --- destinations ---

func (s *Server) listDestinations(*http.Request, httprouter.Params, principal) (int, any, error) {
	return http.StatusOK, newPage(s.Destinations(), ""), nil
}

// Destinations lists the destinations by slug, signing secrets masked,
// without their queues (Destination reads one with its queue).
func (s *Server) Destinations() []DestinationOut {
	snap := s.node.Snapshot()
	var out []DestinationOut
	for _, k := range slices.Sorted(maps.Keys(snap.Destinations)) {
		out = append(out, destinationOut(snap.Destinations[k], false))
	}
	return out
}

func (s *Server) getDestination(r *http.Request, ps httprouter.Params, _ principal) (int, any, error) {
	out, err := s.Destination(r.Context(), ps.ByName("slug"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// Destination reads one destination with its queue: the destination's
// actor reports depth, in flight and circuit (within 5 s, or 503 busy).
func (s *Server) Destination(ctx context.Context, slug string) (DestinationOut, error) {
	d, ok := s.node.Snapshot().Destinations[slug]
	if !ok {
		return DestinationOut{}, errNotFound("no destination %q", slug)
	}
	out := destinationOut(d, false)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := s.node.DestinationStats(ctx, slug)
	if errors.Is(err, context.DeadlineExceeded) {
		return DestinationOut{}, &Error{Status: http.StatusServiceUnavailable, Code: "busy", Message: "the destination did not report its queue within 5s; retry"}
	}
	if err != nil {
		return DestinationOut{}, err
	}
	out.Stats = &DestinationStats{
		QueueDepth:          st.QueueDepth,
		InFlight:            st.InFlight,
		OldestPendingAt:     st.OldestPendingAt,
		CircuitOpen:         st.CircuitOpen,
		ConsecutiveFailures: st.ConsecutiveFails,
	}
	if !st.OldestPendingAt.IsZero() {
		out.Stats.OldestPendingAgeSec = s.now().Sub(st.OldestPendingAt).Seconds()
	}
	if out.Stats.DeadLetters, err = s.db.CountDead(slug); err != nil {
		return DestinationOut{}, err
	}
	return out, nil
}

func (s *Server) createDestination(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	var d model.Destination
	if err := decodeBody(r, &d); err != nil {
		return 0, nil, err
	}
	if d.PreviousSigningSecret != "" || !d.PreviousSecretExpiresAt.IsZero() {
		return 0, nil, errBadRequest("validation_failed", "previous_signing_secret", "set only by rotating the signing secret")
	}
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	if _, ok := s.node.Snapshot().Destinations[d.Slug]; ok {
		return 0, nil, errConflict("a destination %q already exists", d.Slug)
	}
	if err := s.apply(actors.Change{Destinations: []model.Destination{d}, CreateOnly: true}, p); err != nil {
		return 0, nil, err
	}
	// Apply generated the signing secret if none was given.
	return http.StatusCreated, destinationOut(s.node.Snapshot().Destinations[d.Slug], true), nil
}

func (s *Server) updateDestination(r *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	slug := ps.ByName("slug")
	var d model.Destination
	if err := decodeBody(r, &d); err != nil {
		return 0, nil, err
	}
	if err := sameKey("slug", slug, d.Slug); err != nil {
		return 0, nil, err
	}
	d.Slug = slug
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	cur, ok := s.node.Snapshot().Destinations[slug]
	if !ok {
		return 0, nil, errNotFound("no destination %q", slug)
	}
	if d.SigningSecret != "" && !sameMasked([]string{d.SigningSecret}, []string{cur.SigningSecret}) {
		return 0, nil, errBadRequest("validation_failed", "signing_secret", "the signing secret changes only by rotation: POST %s/destinations/%s/signing-secret", APIPrefix, slug)
	}
	d.SigningSecret = cur.SigningSecret
	d.PreviousSigningSecret, d.PreviousSecretExpiresAt = cur.PreviousSigningSecret, cur.PreviousSecretExpiresAt
	// Credentials sent back masked, as a read showed them, stay as they are.
	d = d.KeepMaskedCredentials(cur)
	if err := s.apply(actors.Change{Destinations: []model.Destination{d}, UpdateOnly: true}, p); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, destinationOut(d, false), nil
}

func (s *Server) deleteDestination(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	slug := ps.ByName("slug")
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	snap := s.node.Snapshot()
	if _, ok := snap.Destinations[slug]; !ok {
		return 0, nil, errNotFound("no destination %q", slug)
	}
	var users []string
	for _, k := range slices.Sorted(maps.Keys(snap.Sources)) {
		if slices.ContainsFunc(snap.Sources[k].Routes, func(r model.Route) bool { return r.Destination == slug }) {
			users = append(users, k)
		}
	}
	if len(users) > 0 {
		return 0, nil, errConflict("destination %q is routed to by sources %v; remove those routes first", slug, users)
	}
	if err := s.apply(actors.Change{DeleteDestinations: []string{slug}}, p); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// SetPaused pauses or resumes delivery to destination slug (its queue
// keeps filling while paused).
func (s *Server) SetPaused(slug string, paused bool, p Principal) (DestinationOut, error) {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	d, ok := s.node.Snapshot().Destinations[slug]
	if !ok {
		return DestinationOut{}, errNotFound("no destination %q", slug)
	}
	d.Paused = paused
	if err := s.apply(actors.Change{Destinations: []model.Destination{d}, UpdateOnly: true}, p); err != nil {
		return DestinationOut{}, err
	}
	return destinationOut(d, false), nil
}

func (s *Server) pauseDestination(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	out, err := s.SetPaused(ps.ByName("slug"), true, p)
	return http.StatusOK, out, err
}

func (s *Server) resumeDestination(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	out, err := s.SetPaused(ps.ByName("slug"), false, p)
	return http.StatusOK, out, err
}

func (s *Server) rotateSigningSecret(r *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	var req api.SecretRequest
	if err := decodeOptional(r, &req); err != nil {
		return 0, nil, err
	}
	rot, err := s.RotateSigningSecret(ps.ByName("slug"), req.Secret, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, rot, nil
}

// RotateSigningSecret gives destination slug a new signing secret (given,
// or generated when empty); the previous one keeps signing for
// SigningSecretOverlap. The answer is the only time the secret is shown.
func (s *Server) RotateSigningSecret(slug, secret string, p Principal) (SecretRotation, error) {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	d, ok := s.node.Snapshot().Destinations[slug]
	if !ok {
		return SecretRotation{}, errNotFound("no destination %q", slug)
	}
	sec, err := secretOrNew(secret)
	if err != nil {
		return SecretRotation{}, err
	}
	d.PreviousSigningSecret, d.PreviousSecretExpiresAt = d.SigningSecret, s.now().Add(SigningSecretOverlap)
	d.SigningSecret = sec
	rotated := wal.AuditEntry{At: s.now(), Action: "secret.rotated", ObjectType: "destination", ObjectID: slug,
		Detail: map[string]string{"secret_id": secretID(sec), "secret": actors.Mask(sec)}}
	if err := s.apply(actors.Change{Destinations: []model.Destination{d}, Audit: []wal.AuditEntry{rotated}, UpdateOnly: true}, p); err != nil {
		return SecretRotation{}, err
	}
	out := destinationOut(d, false)
	return SecretRotation{Secret: sec, SecretID: secretID(sec), Destination: &out}, nil
}

// --- agents ---

func newAgentSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (s *Server) listAgents(*http.Request, httprouter.Params, principal) (int, any, error) {
	return http.StatusOK, newPage(s.Agents(), ""), nil
}

// Agents lists the agents by id with their online state.
func (s *Server) Agents() []AgentOut {
	snap := s.node.Snapshot()
	members := s.tunnelMembers()
	var out []AgentOut
	for _, k := range slices.Sorted(maps.Keys(snap.Agents)) {
		out = append(out, s.agentOut(snap.Agents[k], members))
	}
	return out
}

func (s *Server) getAgent(_ *http.Request, ps httprouter.Params, _ principal) (int, any, error) {
	a, ok := s.node.Snapshot().Agents[ps.ByName("id")]
	if !ok {
		return 0, nil, errNotFound("no agent %q", ps.ByName("id"))
	}
	return http.StatusOK, s.agentOut(a, s.tunnelMembers()), nil
}

func (s *Server) createAgent(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	var req model.Agent
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	a, _, err := s.putAgentSecret(req.ID, req.AllowedTargets, enrollNew, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, s.withSecret(a, true), nil
}

func (s *Server) updateAgent(r *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	id := ps.ByName("id")
	var a model.Agent
	if err := decodeBody(r, &a); err != nil {
		return 0, nil, err
	}
	if err := sameKey("id", id, a.ID); err != nil {
		return 0, nil, err
	}
	a.ID = id
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	if _, ok := s.node.Snapshot().Agents[id]; !ok {
		return 0, nil, errNotFound("no agent %q", id)
	}
	if err := s.node.Apply(actors.Change{Agents: []model.Agent{a}, KeepAgentSecrets: true, UpdateOnly: true, Actor: p.actor()}); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.agentOut(a, nil), nil
}

func (s *Server) deleteAgent(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	if err := s.DeleteAgent(ps.ByName("id"), p); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// DeleteAgent revokes an agent: it is removed and its session cut. It is
// refused while a destination or forward uses the agent.
func (s *Server) DeleteAgent(id string, p Principal) error {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	snap := s.node.Snapshot()
	if _, ok := snap.Agents[id]; !ok {
		return errNotFound("no agent %q", id)
	}
	var users []string
	for _, k := range slices.Sorted(maps.Keys(snap.Destinations)) {
		if d := snap.Destinations[k]; d.Mode == model.ModeAgent && d.Agent == id {
			users = append(users, "destination "+k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(snap.Forwards)) {
		if snap.Forwards[k].Agent == id {
			users = append(users, "forward "+k)
		}
	}
	if len(users) > 0 {
		return errConflict("agent %q is used by %v; change those first", id, users)
	}
	return s.apply(actors.Change{DeleteAgents: []string{id}}, p)
}

func (s *Server) rotateAgentSecret(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	out, err := s.RotateAgentSecret(ps.ByName("id"), p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, out, nil
}

// RotateAgentSecret gives an existing agent a new secret and cuts its
// session; the answer (with the agentd command) is the only time the
// secret is shown.
func (s *Server) RotateAgentSecret(id string, p Principal) (AgentOut, error) {
	a, _, err := s.putAgentSecret(id, nil, enrollExisting, p)
	if err != nil {
		return AgentOut{}, err
	}
	return s.withSecret(a, false), nil
}

// SigningSecretOverlap is how long a destination's previous signing secret
// keeps signing deliveries after a rotation.
const SigningSecretOverlap = 24 * time.Hour

// secretOrNew returns the secret the request gave, or a newly generated one.
func secretOrNew(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	return delivery.GenerateSigningSecret()
}

// sameKey refuses a body whose key (slug or id) differs from the path's;
// an empty one in the body means the path's.
func sameKey(field, path, body string) error {
	if body != "" && body != path {
		return errBadRequest("validation_failed", field, "the %s cannot change (path says %q, body %q)", field, path, body)
	}
	return nil
}
