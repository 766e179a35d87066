// Package backup writes and restores one server's state as a single
// .tar.gz: the SQLite database (a VACUUM INTO copy, taken while the server
// runs), the secrets directory, the broker's TLS authority, the broker
// state that is not in the database (the key-value buckets and the newest
// command of every subject), and a manifest that lists every part with its
// size and SHA-256. A restore checks every part against the manifest
// before it writes anything where the server will look.
package backup

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"
)

// Format and Version identify the file; a restore refuses others.
const (
	Format  = "kanade-backup"
	Version = 1
)

// ManifestName is the first entry of every backup file.
const ManifestName = "manifest.json"

// Part kinds.
const (
	KindDatabase = "database"
	KindSecret   = "secret"
	KindTLS      = "tls"
	KindBroker   = "broker"
)

// Paths of the parts inside the file.
const (
	databasePath  = "database/kanade.db"
	secretsPrefix = "secrets/"
	tlsPrefix     = "tls/"
	brokerPath    = "broker/messages.jsonl"
)

// Manifest describes a backup file.
type Manifest struct {
	Format        string    `json:"format"`
	Version       int       `json:"version"`
	KanadeVersion string    `json:"kanade_version"`
	CreatedAt     time.Time `json:"created_at"`
	Database      Database  `json:"database"`
	// Streams are the broker streams whose messages broker/messages.jsonl holds.
	Streams []string `json:"streams"`
	Parts   []Part   `json:"parts"`
}

// Database says whether the file holds the database.
type Database struct {
	Driver   string `json:"driver"`
	Included bool   `json:"included"`
	// Note says what to do when it is not included.
	Note string `json:"note,omitempty"`
}

// Part is one file of the backup.
type Part struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// PostgresNote is the manifest's note for a backup of a server on
// PostgreSQL.
const PostgresNote = "the database is PostgreSQL and is not in this file: back it up with pg_dump at the same time and restore it with pg_restore (README: Backups)"

// maxManifestBytes bounds the manifest a restore reads.
const maxManifestBytes = 1 << 20

// validPartPath reports whether p is a clean relative slash path of a
// part kind k may have.
func validPartPath(p, kind string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == ".." {
		return fmt.Errorf("part %q: not a clean relative path", p)
	}
	ok := false
	switch kind {
	case KindDatabase:
		ok = p == databasePath
	case KindSecret:
		ok = strings.HasPrefix(p, secretsPrefix) && len(p) > len(secretsPrefix)
	case KindTLS:
		ok = strings.HasPrefix(p, tlsPrefix) && len(p) > len(tlsPrefix)
	case KindBroker:
		ok = p == brokerPath
	}
	if !ok {
		return fmt.Errorf("part %q: not a path of a %q part", p, kind)
	}
	return nil
}

// check validates a manifest read from a file.
func (m *Manifest) check() error {
	if m.Format != Format {
		return fmt.Errorf("not a kanade backup (format %q)", m.Format)
	}
	if m.Version != Version {
		return fmt.Errorf("backup format version %d: this kanade reads version %d", m.Version, Version)
	}
	seen := map[string]bool{}
	hasSecrets := false
	for _, p := range m.Parts {
		if err := validPartPath(p.Path, p.Kind); err != nil {
			return err
		}
		if seen[p.Path] {
			return fmt.Errorf("part %q listed twice", p.Path)
		}
		seen[p.Path] = true
		if p.Size < 0 || len(p.SHA256) != 64 {
			return fmt.Errorf("part %q: bad size or sha256", p.Path)
		}
		hasSecrets = hasSecrets || p.Kind == KindSecret
		if p.Kind == KindDatabase && !m.Database.Included {
			return fmt.Errorf("part %q: the manifest says the database is not included", p.Path)
		}
	}
	if m.Database.Included && !seen[databasePath] {
		return fmt.Errorf("the manifest says the database is included but lists no %s", databasePath)
	}
	if !hasSecrets {
		return fmt.Errorf("the manifest lists no secrets")
	}
	return nil
}

func (m *Manifest) part(p string) (Part, bool) {
	for _, x := range m.Parts {
		if x.Path == p {
			return x, true
		}
	}
	return Part{}, false
}

func decodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return &m, nil
}
