package tunnelproto

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Forward serves a raw TCP forward: every connection accepted on ln is
// dialled through the agent to target (KindTCP) and joined with it, with
// half-close in both directions. It returns when ctx is done (cutting the
// copies) or when ln is closed, after its copies have ended. A failed Dial
// closes that one connection and is logged; Forward keeps serving.
func (s *Server) Forward(ctx context.Context, ln net.Listener, agentID, target string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc, err := s.Dial(ctx, agentID, KindTCP, target)
			if err != nil {
				s.log.Warn("forward: dial through agent failed", "agent", agentID, "target", target, "client", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			cut := context.AfterFunc(ctx, func() {
				c.Close()
				sc.Close()
			})
			defer cut()
			Join(c, sc)
		}()
	}
}

// Transport returns the agent's http.Transport (one per agent id, shared by
// every caller) whose connections are streams through the agent (KindHTTP),
// so a request to http://localhost:3000/hooks reaches localhost:3000 as seen
// from the agent. It uses no proxy. Each idle keep-alive connection holds
// one stream; the server closes idle ones when the agent drains and when the
// server closes.
func (s *Server) Transport(agentID string) *http.Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tr := s.transports[agentID]; tr != nil {
		return tr
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return s.Dial(ctx, agentID, KindHTTP, addr)
		},
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	s.transports[agentID] = tr
	return tr
}

func (s *Server) closeAllIdle() {
	s.mu.Lock()
	trs := make([]*http.Transport, 0, len(s.transports))
	for _, tr := range s.transports {
		trs = append(trs, tr)
	}
	s.mu.Unlock()
	for _, tr := range trs {
		tr.CloseIdleConnections()
	}
}

func (s *Server) closeIdle(agentID string) {
	s.mu.Lock()
	tr := s.transports[agentID]
	s.mu.Unlock()
	if tr != nil {
		tr.CloseIdleConnections()
	}
}
