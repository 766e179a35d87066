package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Source is what a backup reads.
type Source struct {
	// DataDir is the server's data directory; the record of the backup
	// (RecordFile) is written there.
	DataDir string
	// SecretsDir holds the keys.
	SecretsDir string
	// TLSDir holds the broker's TLS authority ("" or missing: none).
	TLSDir string
	// Driver is "sqlite" or "postgres"; SQLitePath is the database file.
	Driver     string
	SQLitePath string
	// JS reaches the running server's broker.
	JS jetstream.JetStream
	// KanadeVersion is written into the manifest.
	KanadeVersion string
	Now           func() time.Time
}

// Create writes a backup of src to out (which must not exist) and records
// it in src.DataDir. The file holds the secrets: it is written readable by
// its owner only.
func Create(ctx context.Context, src Source, out string) (*Manifest, error) {
	if src.Now == nil {
		src.Now = time.Now
	}
	if _, err := os.Lstat(out); err == nil {
		return nil, fmt.Errorf("%s exists: choose a new file name", out)
	}
	stage, err := os.MkdirTemp(filepath.Dir(out), ".kanade-backup-*")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(stage)
	m := &Manifest{Format: Format, Version: Version, KanadeVersion: src.KanadeVersion, CreatedAt: src.Now().UTC().Truncate(time.Second),
		Database: Database{Driver: src.Driver}, Streams: Streams}
	var files []string // staged parts, in the order they go into the file

	switch src.Driver {
	case "sqlite":
		dst := filepath.Join(stage, filepath.FromSlash(databasePath))
		if err := snapshotSQLite(ctx, src.SQLitePath, dst); err != nil {
			return nil, err
		}
		m.Database.Included = true
		m.Parts = append(m.Parts, Part{Path: databasePath, Kind: KindDatabase})
		files = append(files, dst)
	case "postgres":
		m.Database.Note = PostgresNote
	default:
		return nil, fmt.Errorf("backup: database driver %q", src.Driver)
	}

	secrets, err := copyTree(src.SecretsDir, filepath.Join(stage, "secrets"), true)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("secrets: %s holds no keys: is --data (or --secrets) the server's?", src.SecretsDir)
	}
	for _, p := range secrets {
		m.Parts = append(m.Parts, Part{Path: secretsPrefix + p, Kind: KindSecret})
		files = append(files, filepath.Join(stage, "secrets", filepath.FromSlash(p)))
	}
	if src.TLSDir != "" {
		tlsFiles, err := copyTree(src.TLSDir, filepath.Join(stage, "tls"), false)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		for _, p := range tlsFiles {
			m.Parts = append(m.Parts, Part{Path: tlsPrefix + p, Kind: KindTLS})
			files = append(files, filepath.Join(stage, "tls", filepath.FromSlash(p)))
		}
	}

	brokerFile := filepath.Join(stage, filepath.FromSlash(brokerPath))
	if err := os.MkdirAll(filepath.Dir(brokerFile), 0o700); err != nil {
		return nil, err
	}
	bf, err := os.OpenFile(brokerFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = dumpStreams(ctx, src.JS, Streams, bf)
	if cerr := bf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("broker state: %w", err)
	}
	m.Parts = append(m.Parts, Part{Path: brokerPath, Kind: KindBroker})
	files = append(files, brokerFile)

	for i := range m.Parts {
		if m.Parts[i].Size, m.Parts[i].SHA256, err = hashFile(files[i]); err != nil {
			return nil, err
		}
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	size, sum, err := writeArchive(out, m, files)
	if err != nil {
		return nil, err
	}
	rec := Record{At: m.CreatedAt, File: absPath(out), Size: size, SHA256: sum, Database: m.Database.Included}
	if err := writeRecord(src.DataDir, rec); err != nil {
		return m, fmt.Errorf("the backup %s is complete, but its record was not written: %w", out, err)
	}
	return m, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// snapshotSQLite copies the database at path into dst with VACUUM INTO: a
// consistent copy taken in one read transaction, which a running server's
// writes (WAL mode) neither block nor disturb.
func snapshotSQLite(ctx context.Context, path, dst string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("database: no SQLite database at %s (a server on PostgreSQL: give kanade backup its --db or KANADE_DB_DSN)", path)
	} else if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	// mode=rw: never create a database where none was.
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("database: VACUUM INTO: %w", err)
	}
	return os.Chmod(dst, 0o600)
}

// copyTree copies the regular files below src into dst and returns their
// relative slash paths, sorted. A missing src has none unless required.
// Temporary files (*.tmp) are left out; anything but a file or a
// directory is an error.
func copyTree(src, dst string, required bool) ([]string, error) {
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) && !required {
		return nil, nil
	}
	var out []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", p)
		case strings.HasSuffix(d.Name(), ".tmp"):
			return nil
		}
		if err := copyFile(p, filepath.Join(dst, rel)); err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out, err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

func hashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// writeArchive writes the manifest and then files (in the manifest's
// order) as a .tar.gz to out, through a temporary file renamed into place
// once synced; it returns the file's size and SHA-256.
func writeArchive(out string, m *Manifest, files []string) (int64, string, error) {
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return 0, "", err
	}
	tmp := out + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, "", fmt.Errorf("backup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	gz := gzip.NewWriter(cw)
	tw := tar.NewWriter(gz)
	mtime := m.CreatedAt
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o600, Size: int64(len(mb)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
		return 0, "", err
	}
	if _, err := tw.Write(mb); err != nil {
		return 0, "", err
	}
	for i, p := range m.Parts {
		if err := tw.WriteHeader(&tar.Header{Name: p.Path, Mode: 0o600, Size: p.Size, ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			return 0, "", err
		}
		in, err := os.Open(files[i])
		if err != nil {
			return 0, "", err
		}
		n, err := io.Copy(tw, in)
		in.Close()
		if err != nil {
			return 0, "", err
		}
		if n != p.Size {
			return 0, "", fmt.Errorf("backup: %s changed while it was written", p.Path)
		}
	}
	if err := tw.Close(); err != nil {
		return 0, "", err
	}
	if err := gz.Close(); err != nil {
		return 0, "", err
	}
	if err := f.Sync(); err != nil {
		return 0, "", err
	}
	if err := f.Close(); err != nil {
		return 0, "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, "", err
	}
	ok = true
	return cw.n, hex.EncodeToString(h.Sum(nil)), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
