// Package release keeps the agent releases agents update themselves
// with (docs/UPDATE.md): the binaries in the agent_releases Object Store,
// each with a record signed by a release key and kept in the database;
// the release keys and their rotation; the rollouts of a release (an
// execution of job agent-update, app/dispatch); and the download permits
// that bound how many agents download at once (Permits).
package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kanadehq/kanade/agent/wire"
	"github.com/kanadehq/kanade/app/agentinstall"
	"github.com/kanadehq/kanade/app/audit"
	"github.com/kanadehq/kanade/app/bus"
	"github.com/kanadehq/kanade/app/control"
	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/problem"
	"github.com/kanadehq/kanade/app/sign"
	"github.com/kanadehq/kanade/jobs"
	"github.com/kanadehq/kanade/store"
)

// ErrTooLarge is wrapped by an upload's error when the binary is larger
// than the limit (wire.MaxReleaseSize).
var ErrTooLarge = errors.New("the binary is too large")

// BuiltInActor uploads the agent builds the server was made with.
const BuiltInActor = "kanade"

// Options are what a Service needs.
type Options struct {
	Store *store.Store
	// JS holds the agent_releases bucket.
	JS jetstream.JetStream
	// Provisioner re-creates the bucket when it was deleted (nil: an
	// upload then fails).
	Provisioner *bus.Provisioner
	// Keys sign release records (sign.LoadRelease).
	Keys *sign.Keyring
	// Control announces rotated release keys (nil: not announced).
	Control *control.Sender
	// Dispatcher starts rollouts.
	Dispatcher *dispatch.Dispatcher
	Audit      *audit.Recorder
	// Now is the clock (nil: the real one in UTC).
	Now func() time.Time
	Log *slog.Logger
	// MaxSize bounds a binary (0: wire.MaxReleaseSize, which agents
	// enforce too).
	MaxSize int64
}

// Service uploads, lists, deletes and rolls out releases. It is safe for
// concurrent use.
type Service struct {
	o Options

	mu        sync.Mutex
	uploading map[string]bool // object names being uploaded
}

// New returns a service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxSize <= 0 || o.MaxSize > wire.MaxReleaseSize {
		o.MaxSize = wire.MaxReleaseSize
	}
	return &Service{o: o, uploading: map[string]bool{}}
}

// UploadRequest is a binary to store as a release.
type UploadRequest struct {
	Version, OS, Arch string
	Body              io.Reader
	Actor             string
	// Source is store.ReleaseUploaded ("") or store.ReleaseBuiltIn.
	Source string
}

// CheckRelease returns the problems of a release's version and platform:
// a version wire.ValidateVersion accepts, and a platform kanade builds
// agents for (agentinstall.Platforms).
func CheckRelease(version, os, arch string) []problem.Problem {
	var ps []problem.Problem
	if err := wire.ValidateVersion(version); err != nil {
		ps = append(ps, problem.Problem{Field: "version", Message: err.Error()})
	}
	if _, err := agentinstall.ParsePlatform(os + "-" + arch); err != nil {
		ps = append(ps, problem.Problem{Field: "os", Message: fmt.Sprintf("%q/%q is not a platform kanade builds agents for: use os and arch of %s",
			os, arch, platformList())})
	}
	return ps
}

func platformList() string {
	names := make([]string, len(agentinstall.Platforms))
	for i, p := range agentinstall.Platforms {
		names[i] = p.OS + "/" + p.Arch
	}
	return strings.Join(names, ", ")
}

// Upload streams a binary into the bucket while hashing it, signs its
// record and stores it. A version and platform that has a release
// already is refused (dispatch.ErrConflict): a release never changes
// under the agents that read it; delete it first. The binary must be 1
// byte to MaxSize (ErrTooLarge).
func (s *Service) Upload(ctx context.Context, r UploadRequest) (store.Release, error) {
	if ps := CheckRelease(r.Version, r.OS, r.Arch); len(ps) > 0 {
		return store.Release{}, &problem.Error{Problems: ps}
	}
	name := wire.ReleaseObject(r.Version, r.OS, r.Arch)
	if !s.claim(name) {
		return store.Release{}, fmt.Errorf("%w: release %s for %s/%s is being uploaded right now", dispatch.ErrConflict, r.Version, r.OS, r.Arch)
	}
	defer s.release(name)
	if old, err := s.o.Store.Release(ctx, r.Version, r.OS, r.Arch); err == nil {
		return store.Release{}, fmt.Errorf("%w: release %s for %s/%s exists already (sha256 %s, uploaded by %s); delete it first, or give this build another version",
			dispatch.ErrConflict, r.Version, r.OS, r.Arch, old.Signed.SHA256[:12], old.UploadedBy)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Release{}, err
	}
	return s.put(ctx, r, name)
}

// put stores the object, then the signed record; the object goes again
// when the record cannot be kept.
func (s *Service) put(ctx context.Context, r UploadRequest, name string) (store.Release, error) {
	obs, err := s.bucket(ctx)
	if err != nil {
		return store.Release{}, err
	}
	body := &limited{r: r.Body, h: sha256.New(), left: s.o.MaxSize}
	info, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name, Description: "kanade-agent " + r.Version + " " + r.OS + "/" + r.Arch}, body)
	if err != nil {
		if body.over {
			return store.Release{}, fmt.Errorf("%w: more than %s (the limit)", ErrTooLarge, bus.SizeText(s.o.MaxSize))
		}
		return store.Release{}, fmt.Errorf("store the binary: %w", err)
	}
	rel := wire.Release{Version: r.Version, OS: r.OS, Arch: r.Arch, SHA256: hex.EncodeToString(body.h.Sum(nil)), Size: int64(info.Size), Object: name}
	drop := func() {
		if derr := obs.Delete(context.WithoutCancel(ctx), name); derr != nil && !errors.Is(derr, jetstream.ErrObjectNotFound) {
			s.o.Log.Error("release: cannot remove a binary whose release was not stored", "object", name, "err", derr)
		}
	}
	if rel.Size == 0 {
		drop()
		return store.Release{}, &problem.Error{Problems: []problem.Problem{{Field: "body", Message: "is empty: send the agent binary"}}}
	}
	detail := map[string]any{"version": rel.Version, "os": rel.OS, "arch": rel.Arch, "sha256": rel.SHA256, "size": rel.Size}
	if r.Source == store.ReleaseBuiltIn {
		detail["source"] = store.ReleaseBuiltIn
	}
	if err := s.o.Audit.Record(ctx, r.Actor, audit.ReleaseUpload, name, detail); err != nil {
		drop()
		return store.Release{}, err
	}
	now := s.o.Now()
	signed, err := s.o.Keys.SignRelease(rel, now)
	if err == nil {
		stored := store.Release{Signed: signed, Source: r.Source, UploadedBy: r.Actor, UploadedAt: now}
		if stored.Source == "" {
			stored.Source = store.ReleaseUploaded
		}
		if err = s.o.Store.PutRelease(ctx, stored); err == nil {
			s.o.Log.Info("agent release stored", "version", rel.Version, "os", rel.OS, "arch", rel.Arch, "sha256", rel.SHA256, "size", rel.Size, "by", r.Actor)
			return stored, nil
		}
	}
	drop()
	s.o.Audit.Failed(ctx, r.Actor, audit.ReleaseUpload, name, err)
	return store.Release{}, err
}

func (s *Service) claim(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uploading[name] {
		return false
	}
	s.uploading[name] = true
	return true
}

func (s *Service) release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.uploading, name)
}

// limited hashes what it reads and fails once more than left bytes came.
type limited struct {
	r    io.Reader
	h    hash.Hash
	left int64
	over bool
}

func (l *limited) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.h.Write(p[:n])
	if l.left -= int64(n); l.left < 0 {
		l.over = true
		return 0, ErrTooLarge
	}
	return n, err
}

// MaxSize is the largest binary an upload takes.
func (s *Service) MaxSize() int64 { return s.o.MaxSize }

// bucket is the agent_releases Object Store, provisioned again when it
// was deleted.
func (s *Service) bucket(ctx context.Context) (jetstream.ObjectStore, error) {
	var obs jetstream.ObjectStore
	err := s.o.Provisioner.Retry(ctx, func() error {
		var err error
		obs, err = s.o.JS.ObjectStore(ctx, wire.ReleaseBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", wire.ReleaseBucket, err)
	}
	return obs, nil
}

// List returns every release, newest upload first.
func (s *Service) List(ctx context.Context) ([]store.Release, error) {
	return s.o.Store.Releases(ctx, "")
}

// Get returns the releases of one version (every platform).
func (s *Service) Get(ctx context.Context, version string) ([]store.Release, error) {
	if err := wire.ValidateVersion(version); err != nil {
		return nil, &problem.Error{Problems: []problem.Problem{{Field: "version", Message: err.Error()}}}
	}
	rs, err := s.o.Store.Releases(ctx, version)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("release %s: %w", version, store.ErrNotFound)
	}
	return rs, nil
}

// Delete removes the releases of a version: every platform, or the one
// os and arch name (both or neither). It is refused while a rollout of
// the version is not over (kill it first), and removes the binaries.
func (s *Service) Delete(ctx context.Context, version, os, arch, actor string) ([]store.Release, error) {
	if (os == "") != (arch == "") {
		return nil, &problem.Error{Problems: []problem.Problem{{Field: "os", Message: "give os and arch together, or neither (every platform)"}}}
	}
	if os != "" {
		if ps := CheckRelease(version, os, arch); len(ps) > 0 {
			return nil, &problem.Error{Problems: ps}
		}
	}
	rs, err := s.Get(ctx, version)
	if err != nil {
		return nil, err
	}
	if os != "" {
		var mine []store.Release
		for _, r := range rs {
			if r.Signed.OS == os && r.Signed.Arch == arch {
				mine = append(mine, r)
			}
		}
		if len(mine) == 0 {
			return nil, fmt.Errorf("release %s for %s/%s: %w", version, os, arch, store.ErrNotFound)
		}
		rs = mine
	}
	open, err := s.o.Store.OpenExecutionsOf(ctx, wire.UpdateJobID, version)
	if err != nil {
		return nil, err
	}
	if len(open) > 0 {
		return nil, fmt.Errorf("%w: a rollout of %s is not over (execution %s); kill it or let it end first", dispatch.ErrConflict, version, open[0])
	}
	obs, err := s.bucket(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		name := r.Signed.Object
		detail := map[string]any{"version": r.Signed.Version, "os": r.Signed.OS, "arch": r.Signed.Arch, "sha256": r.Signed.SHA256}
		if err := s.o.Audit.Record(ctx, actor, audit.ReleaseDelete, name, detail); err != nil {
			return nil, err
		}
		// The record goes first: a release without a binary is never
		// offered, a binary without a record is never read.
		err := s.o.Store.DeleteRelease(ctx, r.Signed.Version, r.Signed.OS, r.Signed.Arch)
		if err == nil {
			if err = obs.Delete(ctx, name); errors.Is(err, jetstream.ErrObjectNotFound) {
				err = nil
			}
		}
		if err != nil {
			s.o.Audit.Failed(ctx, actor, audit.ReleaseDelete, name, err)
			return nil, err
		}
		s.o.Log.Info("agent release deleted", "version", r.Signed.Version, "os", r.Signed.OS, "arch", r.Signed.Arch, "by", actor)
	}
	return rs, nil
}

// RolloutRequest is the body of POST /api/agent-releases/{version}/rollout.
type RolloutRequest struct {
	Target   json.RawMessage `json:"target,omitempty"`
	Rollout  json.RawMessage `json:"rollout,omitempty"`
	FourEyes *bool           `json:"four_eyes,omitempty"`
	Title    string          `json:"title,omitempty"`
}

// ParseRollout reads a rollout request: its target and waves follow the
// rules of a manifest's (jobs), and say so in the same words.
func ParseRollout(body []byte) (target store.Target, waves []jobs.Wave, fourEyes *bool, title string, err error) {
	var r RolloutRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return target, nil, nil, "", &problem.Error{Problems: []problem.Problem{{Field: "body", Message: "is not a rollout request ({\"target\": …, \"rollout\": {\"waves\": […]}, \"four_eyes\": …}): " + err.Error()}}}
		}
	}
	// A manifest of job agent-update carries the target and the waves
	// through the manifest's own checks.
	m := map[string]any{"id": wire.UpdateJobID, "version": "1", "execute": map[string]any{"shell": "sh", "script": "update", "timeout": "30m"}}
	m["target"] = json.RawMessage(`{"all": true}`)
	if len(r.Target) > 0 && string(r.Target) != "null" {
		m["target"] = r.Target
	}
	if len(r.Rollout) > 0 && string(r.Rollout) != "null" {
		m["rollout"] = r.Rollout
	}
	data, err := json.Marshal(m)
	if err != nil {
		return target, nil, nil, "", err
	}
	mf, ps := jobs.ParseJSON(data)
	if len(ps) > 0 {
		out := make([]problem.Problem, 0, len(ps))
		for _, p := range ps {
			out = append(out, problem.Problem{Field: p.Field, Message: p.Message})
		}
		return target, nil, nil, "", &problem.Error{Problems: out}
	}
	target = store.Target{All: mf.Target.All, Groups: mf.Target.Groups, PCs: mf.Target.PCs}
	if mf.Rollout != nil {
		waves = mf.Rollout.Waves
	}
	return target, waves, r.FourEyes, r.Title, nil
}

// Rollout starts a rollout of version (see dispatch.DeployUpdate).
func (s *Service) Rollout(ctx context.Context, r dispatch.UpdateRequest) (store.Execution, []dispatch.Excluded, error) {
	return s.o.Dispatcher.DeployUpdate(ctx, r)
}

// TrustedKeys are the release keys agents trust, newest last.
func (s *Service) TrustedKeys() []wire.CommandKey { return s.o.Keys.Trusted() }

// RotateKeys makes a new release signing key and announces the trusted
// keys to every agent. Releases signed before keep their signatures,
// which agents accept while the key stays trusted (sign.Keep keys).
func (s *Service) RotateKeys(ctx context.Context, actor string) ([]wire.CommandKey, error) {
	trusted := s.o.Keys.Trusted()
	replaced := trusted[len(trusted)-1].Kid
	if err := s.o.Audit.Record(ctx, actor, audit.ReleaseKeysRotate, replaced, map[string]any{"replaces": replaced}); err != nil {
		return nil, err
	}
	if _, err := s.o.Keys.Rotate(s.o.Now()); err != nil {
		s.o.Audit.Failed(ctx, actor, audit.ReleaseKeysRotate, replaced, err)
		return nil, err
	}
	if s.o.Control != nil {
		if err := s.o.Control.ReleaseKeys(s.o.Keys); err != nil {
			return nil, err
		}
	}
	s.o.Log.Info("release signing key rotated", "by", actor)
	return s.o.Keys.Trusted(), nil
}

// OfferBuiltIn stores the agent builds found by bins as releases of
// version (the server's own), unless a release of that version and
// platform has the same SHA-256 already. A built-in release whose binary
// changed (a rebuild of the same version) is replaced when no rollout of
// the version is under way; an uploaded one is never replaced.
func (s *Service) OfferBuiltIn(ctx context.Context, bins *agentinstall.Binaries, version string) error {
	if bins == nil || wire.ValidateVersion(version) != nil {
		return nil
	}
	var errs []error
	for _, p := range bins.Available() {
		if err := s.offer(ctx, bins, p, version); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) offer(ctx context.Context, bins *agentinstall.Binaries, p agentinstall.Platform, version string) error {
	bin, err := bins.Open(p)
	if err != nil {
		return err
	}
	defer bin.File.Close()
	old, err := s.o.Store.Release(ctx, version, p.OS, p.Arch)
	switch {
	case err == nil && old.Signed.SHA256 == bin.SHA256:
		return nil
	case err == nil && old.Source != store.ReleaseBuiltIn:
		s.o.Log.Warn("agent release: the built-in agent differs from the uploaded release of the same version; the upload stays",
			"version", version, "platform", p.String(), "uploaded_sha256", old.Signed.SHA256, "built_sha256", bin.SHA256)
		return nil
	case err == nil:
		if open, err := s.o.Store.OpenExecutionsOf(ctx, wire.UpdateJobID, version); err != nil || len(open) > 0 {
			s.o.Log.Warn("agent release: the built-in agent changed while a rollout of its version runs; offered after it", "version", version, "platform", p.String())
			return err
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	name := wire.ReleaseObject(version, p.OS, p.Arch)
	if !s.claim(name) {
		return nil
	}
	defer s.release(name)
	rel, err := s.put(ctx, UploadRequest{Version: version, OS: p.OS, Arch: p.Arch, Body: bin.File, Actor: BuiltInActor, Source: store.ReleaseBuiltIn}, name)
	if err != nil {
		return err
	}
	if rel.Signed.SHA256 != bin.SHA256 {
		return fmt.Errorf("the binary changed while it was stored (sha256 %s, then %s)", bin.SHA256, rel.Signed.SHA256)
	}
	return nil
}
