package cql

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/datastax/go-cassandra-native-protocol/message"
)

// Config configures a Server.
type Config struct {
	Dir    string       // where the storage engine keeps its files (created if missing)
	Logger *slog.Logger // nil: slog.Default()
}

// Server is an embedded CQL native protocol v4 server over a pebble store.
type Server struct {
	log *slog.Logger
	eng *engine

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // connection goroutines
	closeErr  error
	closeOnce sync.Once
}

// Open opens (or creates) the store in cfg.Dir. Everything acknowledged
// before was committed with fsync, so nothing is lost or replayed.
func Open(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("cql: Config.Dir is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "cql")
	db, cat, err := openStore(cfg.Dir, log)
	if err != nil {
		return nil, fmt.Errorf("cql: %w", err)
	}
	s := &Server{log: log, listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
	s.eng = &engine{db: db, log: log, notify: s.broadcast}
	s.eng.cat.Store(withSystem(cat))
	n := 0
	for _, ks := range cat.keyspaces {
		if !ks.virtual {
			n += len(ks.tables)
		}
	}
	log.Info("store opened", "dir", cfg.Dir, "keyspaces", len(cat.keyspaces)-2, "tables", n)
	return s, nil
}

// Serve accepts CQL connections on ln until Close; it returns nil after
// Close and the accept error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.log.Info("serving CQL native protocol v4", "addr", ln.Addr().String())

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			s.mu.Lock()
			delete(s.listeners, ln)
			s.mu.Unlock()
			return fmt.Errorf("cql: accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		if !s.start(nc) {
			return nil
		}
	}
}

// start runs a connection; false when the server is closed.
func (s *Server) start(nc net.Conn) bool {
	c := newConn(s, nc, nc, func() { nc.Close() }, nc.LocalAddr())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.log.Debug("client connected", "remote", nc.RemoteAddr().String())
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.log.Debug("client disconnected", "remote", nc.RemoteAddr().String())
	}()
	return true
}

// broadcast sends a schema change event to the connections registered
// for it.
func (s *Server) broadcast(ev *message.SchemaChangeEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.event(ev)
	}
}

// Close stops accepting, closes client connections, waits for the requests
// in flight and closes the store.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for ln := range s.listeners {
			ln.Close()
		}
		for c := range s.conns {
			c.closeConn()
		}
		s.mu.Unlock()
		s.wg.Wait()
		if err := s.eng.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("cql: close store: %w", err)
		}
		s.log.Info("closed")
	})
	return s.closeErr
}
