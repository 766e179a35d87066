package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"
)

// Target is where a restore writes.
type Target struct {
	// DataDir must be missing or empty.
	DataDir string
	// SecretsDir ("" = DataDir/secrets) must be missing or empty.
	SecretsDir string
	// Driver is the database the restored server will use; SQLitePath
	// its file ("" = DataDir/kanade.db), which must not exist.
	Driver     string
	SQLitePath string
	// Broker starts a broker on a data and a secrets directory, for the
	// restore to publish the broker state into; stop shuts it down.
	Broker func(ctx context.Context, dataDir, secretsDir string) (js jetstream.JetStream, stop func(), err error)
}

// Restore checks the backup in against its manifest and writes it into
// t. Nothing is written where the server will look until every part is
// read and matches its size and SHA-256: a tampered, truncated or
// partial file changes nothing.
func Restore(ctx context.Context, in string, t Target) (*Manifest, error) {
	secretsDir := t.SecretsDir
	if secretsDir == "" {
		secretsDir = filepath.Join(t.DataDir, "secrets")
	}
	sqlitePath := t.SQLitePath
	if sqlitePath == "" {
		sqlitePath = filepath.Join(t.DataDir, "kanade.db")
	}
	if err := mustBeEmpty(t.DataDir); err != nil {
		return nil, err
	}
	if err := mustBeEmpty(secretsDir); err != nil {
		return nil, err
	}
	f, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	parent := filepath.Dir(filepath.Clean(t.DataDir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(parent, ".kanade-restore-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	parts := filepath.Join(stage, "parts")
	m, err := extract(f, parts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (nothing was restored)", in, err)
	}
	if m.Database.Included && t.Driver != "sqlite" {
		return nil, fmt.Errorf("%s holds a SQLite database, but the target is %s: restore without --db (the server then runs on SQLite)", in, t.Driver)
	}
	if m.Database.Included {
		if _, err := os.Lstat(sqlitePath); err == nil {
			return nil, fmt.Errorf("%s exists: restore into a new database file", sqlitePath)
		}
	}

	data := filepath.Join(stage, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	stagedSecrets := filepath.Join(data, "secrets")
	if err := os.Rename(filepath.Join(parts, "secrets"), stagedSecrets); err != nil {
		return nil, err
	}
	if err := renameIfExists(filepath.Join(parts, "tls"), filepath.Join(data, "tls")); err != nil {
		return nil, err
	}
	if t.Broker == nil {
		return nil, errors.New("restore: no broker to publish the broker state into")
	}
	js, stop, err := t.Broker(ctx, data, stagedSecrets)
	if err != nil {
		return nil, fmt.Errorf("restore the broker state: %w (nothing was restored)", err)
	}
	bf, err := os.Open(filepath.Join(parts, filepath.FromSlash(brokerPath)))
	if err == nil {
		_, err = replayStreams(ctx, js, m.Streams, bf)
		bf.Close()
	}
	stop()
	if err != nil {
		return nil, fmt.Errorf("restore the broker state: %w (nothing was restored)", err)
	}

	// Everything checked and staged: move it into place.
	if m.Database.Included {
		// A database inside the data directory moves with it.
		dbPath := sqlitePath
		if rel, err := filepath.Rel(t.DataDir, sqlitePath); err == nil && filepath.IsLocal(rel) {
			dbPath = filepath.Join(data, rel)
		}
		if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
			return nil, err
		}
		if err := move(filepath.Join(parts, filepath.FromSlash(databasePath)), dbPath); err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
	}
	if secretsDir != filepath.Join(t.DataDir, "secrets") {
		if err := removeEmpty(secretsDir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(secretsDir), 0o700); err != nil {
			return nil, err
		}
		if err := move(stagedSecrets, secretsDir); err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
	}
	if err := removeEmpty(t.DataDir); err != nil {
		return nil, err
	}
	if err := os.Rename(data, t.DataDir); err != nil {
		return nil, err
	}
	return m, nil
}

// extract reads the manifest (the first entry) and every part into dir,
// checking each against the manifest.
func extract(r io.Reader, dir string) (*Manifest, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a .tar.gz: %w", err)
	}
	tr := tar.NewReader(gz)
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("read the manifest: %w", err)
	}
	if h.Name != ManifestName || h.Typeflag != tar.TypeReg || h.Size > maxManifestBytes {
		return nil, fmt.Errorf("the first entry is %q, not the manifest", h.Name)
	}
	mb, err := io.ReadAll(io.LimitReader(tr, maxManifestBytes))
	if err != nil {
		return nil, fmt.Errorf("read the manifest: %w", err)
	}
	m, err := decodeManifest(mb)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		p, ok := m.part(h.Name)
		switch {
		case !ok:
			return nil, fmt.Errorf("entry %q is not in the manifest", h.Name)
		case seen[h.Name]:
			return nil, fmt.Errorf("entry %q appears twice", h.Name)
		case h.Typeflag != tar.TypeReg:
			return nil, fmt.Errorf("entry %q is not a regular file", h.Name)
		case h.Size != p.Size:
			return nil, fmt.Errorf("entry %q: %d bytes, the manifest says %d", h.Name, h.Size, p.Size)
		}
		seen[h.Name] = true
		dst := filepath.Join(dir, filepath.FromSlash(p.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, err
		}
		o, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		hs := sha256.New()
		n, err := io.Copy(io.MultiWriter(o, hs), io.LimitReader(tr, p.Size))
		if cerr := o.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", h.Name, err)
		}
		if n != p.Size || hex.EncodeToString(hs.Sum(nil)) != p.SHA256 {
			return nil, fmt.Errorf("entry %q does not match the manifest's SHA-256: the file is damaged or was changed", h.Name)
		}
	}
	// The gzip trailer's checksum is checked at its end.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	for _, p := range m.Parts {
		if !seen[p.Path] {
			return nil, fmt.Errorf("%q is missing: the file is incomplete", p.Path)
		}
	}
	return m, nil
}

// mustBeEmpty refuses a directory that has entries (or a file).
func mustBeEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty: restore into a new directory (a restore never overwrites a server's data)", dir)
	}
	return nil
}

func removeEmpty(dir string) error {
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

func renameIfExists(src, dst string) error {
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return os.Rename(src, dst)
}

// move renames src to dst, or copies it when they are on different
// volumes.
func move(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return copyFile(src, dst)
	}
	if _, err := copyTree(src, dst, true); err != nil {
		return err
	}
	return os.RemoveAll(src)
}
