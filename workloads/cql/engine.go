package cql

import (
	"crypto/md5"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// The engine answers request messages (QUERY, PREPARE, EXECUTE, BATCH) with
// response messages. It does no network I/O: conn.go feeds it decoded
// requests and writes what it returns.

type engine struct {
	db       *pebble.DB
	log      *slog.Logger
	cat      atomic.Pointer[catalog] // user keyspaces plus system ones
	schemaMu sync.RWMutex            // writes: shared; DDL: exclusive
	prepared preparedCache
	hot      hotRows
	notify   func(*message.SchemaChangeEvent) // schema change events, may be nil
}

// session is the per-connection state.
type session struct {
	mu       sync.Mutex
	keyspace string
	local    net.Addr
}

func (s *session) currentKeyspace() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyspace
}

func (s *session) setKeyspace(ks string) {
	s.mu.Lock()
	s.keyspace = ks
	s.mu.Unlock()
}

// withSystem returns the catalog with the system keyspaces added.
func withSystem(c *catalog) *catalog {
	for _, ks := range systemKeyspaces() {
		c.keyspaces[ks.name] = ks
	}
	return c
}

// statementPlan is a parsed statement planned against a catalog: what a
// prepared id stands for.
type statementPlan struct {
	id        []byte
	query     string
	keyspace  string // the session keyspace when prepared
	parsed    *parsed
	cat       *catalog
	plan      any // *selectPlan, *mutation, []*mutation (BATCH) or nil (DDL, USE)
	vars      []*message.ColumnMetadata
	pkIndices []uint16
	result    []*message.ColumnMetadata // SELECT result columns
}

func preparedID(keyspace, query string) []byte {
	h := md5.Sum([]byte(keyspace + "\x00" + query))
	return h[:]
}

// plan parses and plans a statement against the current catalog.
func (e *engine) plan(query, keyspace string) (*statementPlan, error) {
	p, err := parse(query)
	if err != nil {
		return nil, err
	}
	return e.planParsed(&statementPlan{id: preparedID(keyspace, query), query: query, keyspace: keyspace, parsed: p})
}

// planParsed (re)plans sp against the current catalog.
func (e *engine) planParsed(old *statementPlan) (*statementPlan, error) {
	sp := &statementPlan{id: old.id, query: old.query, keyspace: old.keyspace, parsed: old.parsed, cat: e.cat.Load()}
	pl := newPlanner(sp.cat, sp.keyspace, sp.parsed)
	switch s := sp.parsed.stmt.(type) {
	case *selectStmt:
		p, err := pl.planSelect(s)
		if err != nil {
			return nil, err
		}
		sp.plan, sp.result = p, p.result
		if p.pk != nil {
			var refs []valueRef
			for _, in := range p.pk {
				if len(in.refs) != 1 || in.list != nil {
					refs = nil
					break
				}
				refs = append(refs, in.refs[0])
			}
			sp.pkIndices = pkIndices(p.t, refs)
		}
	case *insertStmt, *updateStmt, *deleteStmt:
		m, err := pl.planMutation(s)
		if err != nil {
			return nil, err
		}
		sp.plan, sp.pkIndices = m, pkIndices(m.t, m.pk)
	case *batchStmt:
		var ms []*mutation
		for _, child := range s.stmts {
			m, err := pl.planMutation(child)
			if err != nil {
				return nil, err
			}
			ms = append(ms, m)
		}
		sp.plan = ms
	default:
		if len(sp.parsed.binds) > 0 {
			return nil, invalidf("bind markers are not allowed in %s", s.stmtName())
		}
	}
	sp.vars = pl.vars
	return sp, nil
}

func (pl *planner) planMutation(s statement) (*mutation, error) {
	switch s := s.(type) {
	case *insertStmt:
		return pl.planInsert(s)
	case *updateStmt:
		return pl.planUpdate(s)
	case *deleteStmt:
		return pl.planDelete(s)
	}
	return nil, invalidf("Invalid statement in batch: only UPDATE, INSERT and DELETE statements are allowed")
}

// current returns sp planned against the current catalog, re-planning when
// the schema changed. If the change altered its variables or result
// columns, the client's cached metadata is stale: it must re-prepare.
func (e *engine) current(sp *statementPlan) (*statementPlan, error) {
	if sp.cat == e.cat.Load() {
		return sp, nil
	}
	np, err := e.planParsed(sp)
	if err != nil {
		return nil, err
	}
	if !sameColumns(np.vars, sp.vars) || !sameColumns(np.result, sp.result) {
		e.prepared.remove(sp.id)
		return nil, &Error{Code: codeUnprepared, Message: "prepared statement is stale after a schema change, prepare it again", ID: sp.id}
	}
	e.prepared.replace(sp, np)
	return np, nil
}

func sameColumns(a, b []*message.ColumnMetadata) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Table != b[i].Table || a[i].Keyspace != b[i].Keyspace || typeName(a[i].Type) != typeName(b[i].Type) {
			return false
		}
	}
	return true
}

// handle answers one request. Errors become ERROR messages.
func (e *engine) handle(sess *session, msg message.Message) message.Message {
	var res message.Message
	var err error
	switch m := msg.(type) {
	case *message.Query:
		res, err = e.query(sess, m)
	case *message.Prepare:
		res, err = e.prepare(sess, m)
	case *message.Execute:
		res, err = e.execute(sess, m)
	case *message.Batch:
		res, err = e.batch(sess, m)
	default:
		err = newError(codeProtocol, "unexpected %s request", msg.GetOpCode())
	}
	if err != nil {
		return errorMessage(err)
	}
	return res
}

func (e *engine) query(sess *session, m *message.Query) (message.Message, error) {
	sp, err := e.plan(m.Query, sess.currentKeyspace())
	if err != nil {
		return nil, err
	}
	return e.run(sess, sp, m.Options)
}

func (e *engine) prepare(sess *session, m *message.Prepare) (message.Message, error) {
	ks := sess.currentKeyspace()
	if m.Keyspace != "" {
		ks = m.Keyspace
	}
	sp := e.prepared.get(preparedID(ks, m.Query))
	if sp != nil {
		cur, err := e.current(sp)
		var ce *Error
		switch {
		case err == nil:
			sp = cur
		case errors.As(err, &ce) && ce.Code == codeUnprepared:
			sp = nil // stale after a schema change: prepare afresh
		default:
			return nil, err
		}
	}
	if sp == nil {
		var err error
		if sp, err = e.plan(m.Query, ks); err != nil {
			return nil, err
		}
		e.prepared.put(sp)
	}
	res := &message.PreparedResult{
		PreparedQueryId:   sp.id,
		VariablesMetadata: &message.VariablesMetadata{PkIndices: sp.pkIndices, Columns: sp.vars},
		ResultMetadata:    &message.RowsMetadata{ColumnCount: int32(len(sp.result)), Columns: sp.result},
	}
	return res, nil
}

func (e *engine) execute(sess *session, m *message.Execute) (message.Message, error) {
	sp := e.prepared.get(m.QueryId)
	if sp == nil {
		e.log.Debug("EXECUTE of an unknown prepared id: answering Unprepared", "id", hexID(m.QueryId))
		return nil, &Error{Code: codeUnprepared, Message: "Prepared query with ID " + hexID(m.QueryId) + " not found (either the query was not prepared on this host (maybe the host has been restarted?) or you have prepared too many queries and it has been evicted from the internal cache)", ID: m.QueryId}
	}
	return e.run(sess, sp, m.Options)
}

func hexID(id []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(id))
	for _, b := range id {
		out = append(out, digits[b>>4], digits[b&15])
	}
	return string(out)
}

// boundValues returns the values of a request in bind-marker order.
func boundValues(sp *statementPlan, opts *message.QueryOptions) ([]*primitive.Value, error) {
	if opts == nil {
		opts = &message.QueryOptions{}
	}
	n := len(sp.vars)
	if opts.NamedValues != nil {
		vals := make([]*primitive.Value, n)
		for i, v := range sp.vars {
			val, ok := opts.NamedValues[v.Name]
			if !ok {
				return nil, invalidf("No value has been provided for bind variable %s", v.Name)
			}
			vals[i] = val
		}
		if len(opts.NamedValues) > n {
			return nil, invalidf("There were %d markers(?) in CQL but %d bound variables", n, len(opts.NamedValues))
		}
		return vals, nil
	}
	if len(opts.PositionalValues) != n {
		return nil, invalidf("There were %d markers(?) in CQL but %d bound variables", n, len(opts.PositionalValues))
	}
	return opts.PositionalValues, nil
}

// run executes a planned statement.
func (e *engine) run(sess *session, sp *statementPlan, opts *message.QueryOptions) (message.Message, error) {
	if opts == nil {
		opts = &message.QueryOptions{}
	}
	switch s := sp.parsed.stmt.(type) {
	case *useStmt:
		ks := e.cat.Load().keyspaces[s.keyspace]
		if ks == nil {
			return nil, invalidf("Keyspace '%s' does not exist", s.keyspace)
		}
		sess.setKeyspace(s.keyspace)
		return &message.SetKeyspaceResult{Keyspace: s.keyspace}, nil
	case *createKeyspaceStmt, *createTableStmt, *dropKeyspaceStmt, *dropTableStmt, *truncateStmt:
		return e.execDDL(sess, s)
	}
	vals, err := boundValues(sp, opts)
	if err != nil {
		return nil, err
	}
	switch sp.parsed.stmt.(type) {
	case *selectStmt:
		if sp, err = e.current(sp); err != nil {
			return nil, err
		}
		p := sp.plan.(*selectPlan)
		res, err := e.runSelect(p, vals, pageRequest{pageSize: opts.PageSize, pagingState: opts.PagingState}, &virtualCtx{cat: sp.cat, local: sess.local})
		if err != nil {
			return nil, err
		}
		if opts.SkipMetadata {
			res.Metadata.Columns = nil
		}
		return res, nil
	default:
		return e.write(func(b *pebble.Batch, buf *mutationBuf) error {
			cur, err := e.current(sp)
			if err != nil {
				return err
			}
			switch p := cur.plan.(type) {
			case *mutation:
				return p.apply(b, vals, buf)
			case []*mutation:
				for _, m := range p {
					if err := m.apply(b, vals, buf); err != nil {
						return err
					}
				}
				return nil
			}
			return invalidf("%s cannot be executed here", sp.parsed.stmt.stmtName())
		})
	}
}

// write builds a pebble batch with fill and commits it durably (fsync)
// before answering. It holds the schema lock shared so no DDL interleaves.
func (e *engine) write(fill func(*pebble.Batch, *mutationBuf) error) (message.Message, error) {
	e.schemaMu.RLock()
	defer e.schemaMu.RUnlock()
	b := e.db.NewBatch()
	defer b.Close()
	var buf mutationBuf
	if err := fill(b, &buf); err != nil {
		return nil, err
	}
	if b.Empty() {
		return &message.VoidResult{}, nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, newError(codeServer, "commit: %v", err)
	}
	if len(buf.merged) > 0 {
		e.hot.note(e.db, buf.merged, e.log)
	}
	return &message.VoidResult{}, nil
}

func (e *engine) batch(sess *session, m *message.Batch) (message.Message, error) {
	if m.Type == primitive.BatchTypeCounter {
		return nil, unsupported("a COUNTER BATCH")
	}
	ks := sess.currentKeyspace()
	if m.Keyspace != "" {
		ks = m.Keyspace
	}
	// Resolve every child before taking the write lock.
	plans := make([]*statementPlan, len(m.Children))
	for i, child := range m.Children {
		var sp *statementPlan
		var err error
		if child.Id != nil {
			if sp = e.prepared.get(child.Id); sp == nil {
				return nil, &Error{Code: codeUnprepared, Message: "Prepared query with ID " + hexID(child.Id) + " not found", ID: child.Id}
			}
		} else if sp, err = e.plan(child.Query, ks); err != nil {
			return nil, err
		}
		if _, ok := sp.plan.(*mutation); !ok {
			return nil, invalidf("Invalid statement in batch: only UPDATE, INSERT and DELETE statements are allowed")
		}
		plans[i] = sp
	}
	return e.write(func(b *pebble.Batch, buf *mutationBuf) error {
		for i, child := range m.Children {
			sp, err := e.current(plans[i])
			if err != nil {
				return err
			}
			vals, err := boundValues(sp, &message.QueryOptions{PositionalValues: child.Values})
			if err != nil {
				return err
			}
			if err := sp.plan.(*mutation).apply(b, vals, buf); err != nil {
				return err
			}
		}
		return nil
	})
}

// preparedCache maps prepared ids to plans. It is bounded: when full, an
// arbitrary entry is evicted (its client gets Unprepared and re-prepares).
type preparedCache struct {
	mu sync.RWMutex
	m  map[string]*statementPlan
}

const maxPrepared = 10000

func (c *preparedCache) get(id []byte) *statementPlan {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[string(id)]
}

func (c *preparedCache) put(sp *statementPlan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*statementPlan{}
	}
	if len(c.m) >= maxPrepared {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[string(sp.id)] = sp
}

// replace swaps a re-planned entry in, unless it changed meanwhile.
func (c *preparedCache) replace(old, np *statementPlan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[string(old.id)] == old {
		c.m[string(old.id)] = np
	}
}

func (c *preparedCache) remove(id []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, string(id))
}
