// Package store is kanade's database layer: bun models and queries over
// SQLite (modernc.org/sqlite, the default) or PostgreSQL (pgx), one entity
// per file.
//
// Every time is stored as BIGINT unix milliseconds (a zero time.Time is
// NULL) and every duration as BIGINT milliseconds, so comparisons and
// indexes behave the same on both databases; times read back are UTC with
// millisecond precision. Lookups of a missing row return an error wrapping
// ErrNotFound, never a zero value with a nil error.
//
// Write methods run in one transaction each. On SQLite they share one
// writer connection while reads use a pool of their own: writers queue in
// the process, in order, instead of racing for the database's write lock
// (a writer that waited out the busy timeout failed with SQLITE_BUSY),
// and a wait for the writer longer than writerWait fails with ErrBusy.
// Every write transaction starts with BEGIN IMMEDIATE (the _txlock DSN
// parameter). On PostgreSQL a transaction that loses a deadlock or a
// serialization conflict is retried a few times.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kanadehq/kanade/migrations"
)

// ErrNotFound is wrapped by every error about a row that does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is wrapped by the error of a create whose key is already taken.
var ErrExists = errors.New("already exists")

// ErrBusy is wrapped by the error of a write that could not get the
// database in time (SQLite: the writer stayed taken for writerWait, or the
// database lock for the busy timeout). Nothing was written; the caller
// may try again.
var ErrBusy = errors.New("database busy")

// IsBusy reports whether err is ErrBusy or SQLite's SQLITE_BUSY or
// SQLITE_LOCKED (also from a read, or from a write that did not go through
// the writer).
func IsBusy(err error) bool {
	if errors.Is(err, ErrBusy) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary code of an extended one
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// busy wraps a SQLite busy or locked error with ErrBusy.
func busy(err error) error {
	if err != nil && !errors.Is(err, ErrBusy) && IsBusy(err) {
		return fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return err
}

// Database drivers accepted by Open.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Paging limits of the list methods.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// batchRows is the most rows one multi-row statement writes.
const batchRows = 500

// batchBytes is the most text (output, reasons) one multi-row statement
// carries, so that a batch of large outputs stays far from the statement
// size limits of both databases.
const batchBytes = 8 << 20

// sqliteParams are the connection settings of every SQLite connection:
// WAL, NORMAL sync, a 10 s busy timeout, foreign keys, temporary data
// (such as the statement journal of a multi-row upsert) in memory rather
// than in temporary files, and BEGIN IMMEDIATE for every read-write
// transaction.
//
// Results arrive in no order, so each batch of them rewrites most pages
// of its execution's rows and indexes: a checkpoint every 10,000 WAL pages
// (40 MB; SQLite's default is 1,000) copies a page rewritten by several
// batches once, and a page cache of 8 MB (the default is 2 MB) holds the
// pages of a 10,000-target execution. Applying 10,000 shuffled results in
// batches of 2,000 took 126–136 ms with the defaults, 109–113 ms with
// these (BenchmarkApplyResults10k).
//
// A checkpoint that resets the WAL cuts the file back to
// journal_size_limit (walSizeLimit); without it the file keeps the largest
// size it ever reached (see also Checkpoint).
const sqliteParams = "_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(10000)&_pragma=cache_size(-8000)&_pragma=journal_size_limit(67108864)&_txlock=immediate"

// walSizeLimit is journal_size_limit in sqliteParams: the size a reset WAL
// is cut back to, and the size above which the periodic checkpoint
// truncates it.
const walSizeLimit = 64 << 20

// checkpointEvery is how often a SQLite Store looks at the size of its WAL.
const checkpointEvery = time.Minute

// sqliteMaxConns is the most SQLite connections one Store opens for reads;
// writes have one more of their own.
const sqliteMaxConns = 16

// writerWait is the longest a SQLite write waits for the writer connection
// before it fails with ErrBusy.
const writerWait = 10 * time.Second

// txAttempts is how often a PostgreSQL transaction that failed with a
// deadlock or serialization error is tried.
const txAttempts = 4

// Store is a handle to the database. The Store returned by Open is safe for
// concurrent use; the Store that InTx passes to its function is bound to
// that transaction and must not outlive it.
type Store struct {
	db   bun.IDB
	root *bun.DB // the database (its read pool on SQLite); nil inside a transaction
	// writer is where writes go: on SQLite a pool of one connection, on
	// PostgreSQL root; nil inside a transaction.
	writer *bun.DB
	driver string
	// wstmts are the statements prepared on writer (stmts on PostgreSQL).
	wstmts *stmtCache
	// stopCheckpoints ends the SQLite checkpoint loop (nil: none runs).
	stopCheckpoints context.CancelFunc
	checkpointsDone chan struct{}
	// walPath is the SQLite database's -wal file.
	walPath string
	// writerWait is the longest a write waits for SQLite's writer
	// (writerWait, the constant, outside tests).
	writerWait time.Duration
	// migrateMu serializes Migrate calls on one Store; other processes are
	// kept out by the database lock Migrate takes.
	migrateMu *sync.Mutex
	stmts     *stmtCache
}

// stmtCache holds the statements prepared runs, prepared once on the
// database (database/sql then keeps them prepared on each connection a
// transaction uses): the projector's upserts and the status refresh run
// in every batch of results, and parsing them anew each time was a third
// of the batch's database time at 10,000 agents.
type stmtCache struct {
	db *sql.DB
	// single: db has one connection (SQLite's writer), which the
	// transaction asking for a statement holds, so db cannot prepare it
	// then: the transaction prepares it for itself, and db once the
	// transaction is over (want, prepareWanted).
	single bool
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	want   map[string]bool
}

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[query]; st != nil {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

// forTx returns query prepared for tx; the statement ends with tx, or
// earlier when closed.
func (c *stmtCache) forTx(ctx context.Context, tx bun.Tx, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	base := c.m[query]
	if base == nil && c.single {
		c.want[query] = true
		c.mu.Unlock()
		return tx.PrepareContext(ctx, query)
	}
	c.mu.Unlock()
	if base == nil {
		var err error
		if base, err = c.get(ctx, query); err != nil {
			return nil, err
		}
	}
	return tx.StmtContext(ctx, base), nil
}

// prepareWanted prepares on db the statements transactions prepared for
// themselves; one that fails is tried again after the next transaction
// that wants it.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	var qs []string
	for q := range c.want {
		if c.m[q] == nil {
			qs = append(qs, q)
		}
	}
	clear(c.want)
	c.mu.Unlock()
	// Without the lock: preparing waits for the connection, which a
	// transaction asking the cache for a statement may hold.
	for _, q := range qs {
		st, err := c.db.PrepareContext(ctx, q)
		c.mu.Lock()
		switch {
		case err != nil:
			c.want[q] = true
		case c.m[q] == nil:
			c.m[q] = st
		default:
			_ = st.Close()
		}
		c.mu.Unlock()
	}
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		_ = st.Close()
	}
	clear(c.m)
}

// Open opens the database. driver is "sqlite" (dsn is the database file
// path; its parent directory is created) or "postgres" (dsn is a
// postgres:// URL or a key=value connection string). The connection is
// checked before Open returns; the schema is not touched (see Migrate).
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	var (
		sqldb, wsqldb *sql.DB
		db, wdb       *bun.DB
		err           error
	)
	switch driver {
	case DriverSQLite:
		uri, err := sqliteURI(dsn)
		if err != nil {
			return nil, err
		}
		if err := restrictSQLiteFiles(dsn, true); err != nil {
			return nil, err
		}
		if sqldb, err = sql.Open("sqlite", uri); err != nil {
			return nil, fmt.Errorf("store: open sqlite %s: %w", dsn, err)
		}
		// Bounded, so that a burst of readers cannot open a page cache each.
		sqldb.SetMaxOpenConns(sqliteMaxConns)
		sqldb.SetMaxIdleConns(sqliteMaxConns)
		db = bun.NewDB(sqldb, sqlitedialect.New())
		if wsqldb, err = sql.Open("sqlite", uri); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store: open sqlite %s: %w", dsn, err)
		}
		wsqldb.SetMaxOpenConns(1)
		wsqldb.SetMaxIdleConns(1)
		wdb = bun.NewDB(wsqldb, sqlitedialect.New())
		// The writer connects first: it sets the WAL mode, which needs a
		// write.
		if err := wdb.PingContext(ctx); err != nil {
			_ = wdb.Close()
			_ = db.Close()
			return nil, fmt.Errorf("store: connect to %s: %w", driver, err)
		}
	case DriverPostgres:
		if dsn == "" {
			return nil, errors.New("store: postgres needs a dsn")
		}
		if sqldb, err = sql.Open("pgx", dsn); err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		sqldb.SetMaxIdleConns(8)
		db = bun.NewDB(sqldb, pgdialect.New())
		wsqldb, wdb = sqldb, db
	default:
		return nil, fmt.Errorf("store: unknown driver %q: use %q or %q", driver, DriverSQLite, DriverPostgres)
	}
	closeAll := func() {
		if wdb != db {
			_ = wdb.Close()
		}
		_ = db.Close()
	}
	if err := db.PingContext(ctx); err != nil {
		closeAll()
		return nil, fmt.Errorf("store: connect to %s: %w", driver, err)
	}
	s := &Store{db: db, root: db, writer: wdb, driver: driver, migrateMu: new(sync.Mutex), stmts: &stmtCache{db: sqldb, m: map[string]*sql.Stmt{}},
		writerWait: writerWait}
	s.wstmts = s.stmts
	if driver == DriverSQLite {
		// The first connection made the -wal and -shm files.
		if err := restrictSQLiteFiles(dsn, false); err != nil {
			closeAll()
			return nil, err
		}
		s.wstmts = &stmtCache{db: wsqldb, single: true, m: map[string]*sql.Stmt{}, want: map[string]bool{}}
		abs, _ := filepath.Abs(dsn) // sqliteURI made it absolute already
		s.walPath = abs + "-wal"
		loop, stop := context.WithCancel(context.Background())
		s.stopCheckpoints, s.checkpointsDone = stop, make(chan struct{})
		go s.checkpoints(loop, checkpointEvery)
	}
	return s, nil
}

// sqliteURI turns a file path into the SQLite URI with kanade's connection
// parameters, creating the parent directory.
func sqliteURI(path string) (string, error) {
	if path == "" {
		return "", errors.New("store: sqlite needs a file path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("store: sqlite path %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return "", fmt.Errorf("store: create directory for %s: %w", abs, err)
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // C:/data/kanade.db → /C:/data/kanade.db, as SQLite URIs want
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: sqliteParams}
	return u.String(), nil
}

// sqliteFileMode is the mode of the SQLite database and its -wal and -shm
// files: they hold sessions, token hashes and every target's output, for
// the server's user only. SQLite gives the -wal and -shm files it creates
// the database file's mode, whatever the umask.
const sqliteFileMode = 0o600

// restrictSQLiteFiles creates the database file at path with
// sqliteFileMode when create is set and it does not exist yet, and sets
// that mode on the database and its -wal and -shm files where they exist
// (files made by an older version, or under a lax umask). A file owned by
// another user keeps its mode: changing it is that user's call.
func restrictSQLiteFiles(path string, create bool) error {
	if create {
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, sqliteFileMode)
		if err != nil {
			return fmt.Errorf("store: create %s: %w", path, err)
		}
		_ = f.Close()
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if fi.Mode().Perm() == sqliteFileMode {
			continue
		}
		if err := os.Chmod(p, sqliteFileMode); err != nil && !errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("store: restrict %s to its owner: %w", p, err)
		}
	}
	return nil
}

// Close closes the database. Call it only on the Store returned by Open.
func (s *Store) Close() error {
	if s.root == nil {
		return errors.New("store: close inside a transaction")
	}
	if s.stopCheckpoints != nil {
		s.stopCheckpoints()
		<-s.checkpointsDone
	}
	s.stmts.close()
	var errs []error
	if s.writer != s.root {
		s.wstmts.close()
		errs = append(errs, s.writer.Close())
	}
	errs = append(errs, s.root.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// w is where a write outside a transaction goes: the writer (on SQLite
// its one connection, so that writes queue in the process instead of on
// the database's lock), or the transaction s is bound to.
func (s *Store) w() bun.IDB {
	if s.writer != nil {
		return s.writer
	}
	return s.db
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.root == nil {
		return nil // a live transaction is proof enough
	}
	if err := s.root.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Driver returns "sqlite" or "postgres".
func (s *Store) Driver() string { return s.driver }

// Migrate applies the migrations that are not applied yet; with none left
// it changes nothing. It holds a lock while it works, so several servers
// starting at once apply each migration once: a PostgreSQL advisory lock
// (released by the database if the process dies), or on SQLite bun's lock
// row (waited for up to a minute).
func (s *Store) Migrate(ctx context.Context) error {
	if s.root == nil {
		return errors.New("store: migrate inside a transaction")
	}
	s.migrateMu.Lock()
	defer s.migrateMu.Unlock()

	ms, err := migrations.New()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	m := migrate.NewMigrator(s.writer, ms, migrate.WithMarkAppliedOnSuccess(true))

	if s.driver == DriverPostgres {
		unlock, err := s.pgMigrationLock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		if err := m.Init(ctx); err != nil {
			return fmt.Errorf("store: migrate init: %w", err)
		}
	} else {
		if err := m.Init(ctx); err != nil {
			return fmt.Errorf("store: migrate init: %w", err)
		}
		if err := sqliteMigrationLock(ctx, m); err != nil {
			return err
		}
		defer func() { _ = m.Unlock(context.WithoutCancel(ctx)) }()
	}
	if _, err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	// Executions recorded before outcomes were kept get theirs.
	return s.fillOutcomes(ctx)
}

// pgMigrationLock takes a session advisory lock for the current schema on a
// connection of its own and returns the function that releases it.
func (s *Store) pgMigrationLock(ctx context.Context) (func(), error) {
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migration lock: %w", err)
	}
	h := fnv.New32a()
	h.Write([]byte("kanade migrations"))
	key := int32(h.Sum32())
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?, hashtext(current_schema()))", key); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("store: migration lock: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?, hashtext(current_schema()))", key)
		_ = conn.Close()
	}, nil
}

// sqliteMigrationLock takes bun's migration lock row, waiting for another
// process to release it.
func sqliteMigrationLock(ctx context.Context, m *migrate.Migrator) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := m.Lock(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: migrations are locked by another process (if none runs, delete the row in bun_migration_locks): %w", err)
		case <-tick.C:
		}
	}
}

// InTx runs fn in one transaction: it commits when fn returns nil and
// rolls back otherwise. Inside a transaction, InTx uses a savepoint. On
// PostgreSQL fn may run again when the database aborts the transaction for
// a deadlock or serialization conflict, so fn must do its work through tx
// only.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	return s.inTx(ctx, fn)
}

func (s *Store) inTx(ctx context.Context, fn func(tx *Store) error) error {
	run := func(ctx context.Context, tx bun.Tx) error {
		// Statements prepared on the writer: a transaction takes only its
		// own database's.
		return fn(&Store{db: tx, driver: s.driver, migrateMu: s.migrateMu, stmts: s.wstmts, wstmts: s.wstmts})
	}
	if s.root == nil {
		return s.db.RunInTx(ctx, nil, run)
	}
	if s.driver == DriverSQLite {
		conn, err := s.writerConn(ctx)
		if err != nil {
			return err
		}
		err = busy(conn.RunInTx(ctx, nil, run))
		_ = conn.Close()
		wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.writerWait)
		s.wstmts.prepareWanted(wait)
		cancel()
		return err
	}
	var err error
	for attempt := 1; attempt <= txAttempts; attempt++ {
		err = s.writer.RunInTx(ctx, nil, run)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// writerConn takes SQLite's writer connection, waiting at most writerWait
// (ErrBusy) or until ctx is done. The caller closes it, which gives it
// back.
func (s *Store) writerConn(ctx context.Context) (bun.Conn, error) {
	wait, cancel := context.WithTimeout(ctx, s.writerWait)
	defer cancel()
	conn, err := s.writer.Conn(wait)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return bun.Conn{}, fmt.Errorf("store: %w: writes waited %s for the database", ErrBusy, s.writerWait)
		}
		return bun.Conn{}, fmt.Errorf("store: %w", busy(err))
	}
	return conn, nil
}

// prepared runs fn with a func that executes query (with ? placeholders,
// turned into $1, $2, … on PostgreSQL) in the transaction s is bound to.
// Unlike bun's queries, whose arguments are formatted into the text, the
// statement is parsed once per connection (stmtCache), however often it
// runs.
//
// Each run checks ctx first but runs without its cancellation: the SQLite
// driver starts a goroutine to watch a cancellable context for every
// statement, which was a fifth of the time of 10,000 one-row upserts.
func (s *Store) prepared(ctx context.Context, query string, fn func(exec func(args ...any) (sql.Result, error)) error) error {
	tx, ok := s.db.(bun.Tx)
	if !ok {
		return errors.New("store: prepared statements need a transaction")
	}
	st, err := s.stmts.forTx(ctx, tx, s.placeholders(query))
	if err != nil {
		return fmt.Errorf("store: prepare: %w", err)
	}
	defer st.Close()
	runCtx := context.WithoutCancel(ctx)
	return fn(func(args ...any) (sql.Result, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return st.ExecContext(runCtx, args...)
	})
}

// rowShapes are the row counts of the multi-row statements execInShapes
// prepares, largest first: n rows go as so many statements of each.
var rowShapes = []int{64, 16, 4, 1}

// execInShapes runs query, whose %s stands for its VALUES rows of cols
// columns each, for n rows as statements prepared once (see prepared) of
// rowShapes rows each, in the transaction s is bound to; rowArgs appends the
// values of row i. It returns the rows affected. On SQLite, in-process,
// that beats both a statement per row (the per-statement work of
// database/sql and the driver) and a statement of all rows formatted and
// parsed anew each time.
func (s *Store) execInShapes(ctx context.Context, query string, cols, n int, rowArgs func(args []any, i int) []any) (int64, error) {
	var affected int64
	next := 0
	for _, shape := range rowShapes {
		if n-next < shape {
			continue
		}
		err := s.prepared(ctx, fmt.Sprintf(query, valuesList(shape, cols)), func(exec func(...any) (sql.Result, error)) error {
			args := make([]any, 0, cols*shape)
			for ; n-next >= shape; next += shape {
				args = args[:0]
				for i := next; i < next+shape; i++ {
					args = rowArgs(args, i)
				}
				res, err := exec(args...)
				if err != nil {
					return err
				}
				k, err := res.RowsAffected()
				if err != nil {
					return err
				}
				affected += k
			}
			return nil
		})
		if err != nil {
			return affected, err
		}
	}
	return affected, nil
}

// queryPrepared runs a read-only query (with ? placeholders) as a
// statement prepared once (stmtCache), in the transaction s is bound to if
// any: for the small reads that run many times a second under load, where
// parsing the query each time cost more than running it.
func (s *Store) queryPrepared(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	var st *sql.Stmt
	var err error
	if tx, ok := s.db.(bun.Tx); ok {
		st, err = s.stmts.forTx(ctx, tx, s.placeholders(query)) // closed with the transaction
	} else {
		st, err = s.stmts.get(ctx, s.placeholders(query))
	}
	if err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Without ctx's cancellation, as in prepared.
	return st.QueryContext(context.WithoutCancel(ctx), args...)
}

// queryStringsPrepared returns the first column of every row of a
// queryPrepared query.
func (s *Store) queryStringsPrepared(ctx context.Context, query string, args ...any) ([]string, error) {
	return scanStrings(s.queryPrepared(ctx, query, args...))
}

// placeholders turns query's ? placeholders into $1, $2, … on PostgreSQL.
func (s *Store) placeholders(query string) string {
	if s.driver != DriverPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// retryable reports whether err is a PostgreSQL deadlock or serialization
// failure, after which the whole transaction can simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// page returns the limit and offset to use for the requested ones.
func page(limit, offset int) (int, int) {
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	return limit, max(offset, 0)
}

// orderText returns col for use in ORDER BY with byte-wise ordering on both
// databases (PostgreSQL would otherwise sort by the database's locale, where
// "-" and "_" are ignored and case folds).
func (s *Store) orderText(col string) string {
	if s.driver == DriverPostgres {
		return col + ` COLLATE "C"`
	}
	return col
}

// millis returns t as unix milliseconds, or nil (NULL) for the zero time.
func millis(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.UnixMilli()
	return &v
}

// fromMillis is the inverse of millis.
func fromMillis(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return time.UnixMilli(*v).UTC()
}

// clean makes agent-reported text storable on both databases: invalid UTF-8
// becomes U+FFFD, and so does NUL, which PostgreSQL text cannot hold.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// chunks splits ids into slices of at most batchRows.
func chunks[T any](xs []T) [][]T {
	var out [][]T
	for len(xs) > batchRows {
		out = append(out, xs[:batchRows:batchRows])
		xs = xs[batchRows:]
	}
	if len(xs) > 0 {
		out = append(out, xs)
	}
	return out
}

// valuesList returns "(?, ?, …), (?, ?, …)" for rows rows of cols columns.
func valuesList(rows, cols int) string {
	one := "(" + strings.Repeat("?, ", cols-1) + "?)"
	var b strings.Builder
	b.Grow(rows * (len(one) + 2))
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}

// likePattern returns a LIKE pattern (escape character '!') matching any
// text that contains q, lower-cased.
func likePattern(q string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return "%" + r.Replace(strings.ToLower(q)) + "%"
}
