package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/kanadehq/kanade/agent/wire"
)

// Release sources.
const (
	ReleaseUploaded = "upload"
	// ReleaseBuiltIn is an agent build the server was made with, offered
	// at its start.
	ReleaseBuiltIn = "built-in"
)

// Release is one agent release: a version for one platform, its binary in
// the agent_releases Object Store, its record signed by a release key.
type Release struct {
	Signed     wire.SignedRelease
	Source     string
	UploadedBy string
	UploadedAt time.Time
}

type releaseRow struct {
	bun.BaseModel `bun:"table:agent_releases,alias:r"`
	Version       string `bun:"version,pk"`
	OS            string `bun:"os,pk"`
	Arch          string `bun:"arch,pk"`
	SHA256        string `bun:"sha256"`
	Size          int64  `bun:"size"`
	Object        string `bun:"object"`
	SignedAt      int64  `bun:"signed_at"`
	Kid           string `bun:"kid"`
	Sig           string `bun:"sig"`
	Source        string `bun:"source"`
	UploadedBy    string `bun:"uploaded_by"`
	UploadedAt    int64  `bun:"uploaded_at"`
}

func (r releaseRow) release() Release {
	sig, _ := base64.StdEncoding.DecodeString(r.Sig)
	return Release{
		Signed: wire.SignedRelease{
			Release:  wire.Release{Version: r.Version, OS: r.OS, Arch: r.Arch, SHA256: r.SHA256, Size: r.Size, Object: r.Object},
			SignedAt: time.UnixMilli(r.SignedAt).UTC(), Kid: r.Kid, Sig: sig,
		},
		Source: r.Source, UploadedBy: r.UploadedBy, UploadedAt: time.UnixMilli(r.UploadedAt).UTC(),
	}
}

// PutRelease stores a release, replacing the one of the same version and
// platform.
func (s *Store) PutRelease(ctx context.Context, rel Release) error {
	sr := rel.Signed
	r := releaseRow{Version: sr.Version, OS: sr.OS, Arch: sr.Arch, SHA256: sr.SHA256, Size: sr.Size, Object: sr.Object,
		SignedAt: sr.SignedAt.UnixMilli(), Kid: sr.Kid, Sig: base64.StdEncoding.EncodeToString(sr.Sig),
		Source: rel.Source, UploadedBy: rel.UploadedBy, UploadedAt: rel.UploadedAt.UnixMilli()}
	if r.Source == "" {
		r.Source = ReleaseUploaded
	}
	_, err := s.w().NewInsert().Model(&r).On("CONFLICT (version, os, arch) DO UPDATE").
		Set("sha256 = EXCLUDED.sha256, size = EXCLUDED.size, object = EXCLUDED.object, signed_at = EXCLUDED.signed_at, kid = EXCLUDED.kid, sig = EXCLUDED.sig, source = EXCLUDED.source, uploaded_by = EXCLUDED.uploaded_by, uploaded_at = EXCLUDED.uploaded_at").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: release %s %s/%s: %w", sr.Version, sr.OS, sr.Arch, busy(err))
	}
	return nil
}

// Release returns the release of version for one platform.
func (s *Store) Release(ctx context.Context, version, os, arch string) (Release, error) {
	var r releaseRow
	err := s.db.NewSelect().Model(&r).Where("r.version = ? AND r.os = ? AND r.arch = ?", version, os, arch).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Release{}, fmt.Errorf("store: release %s %s/%s: %w", version, os, arch, ErrNotFound)
	}
	if err != nil {
		return Release{}, fmt.Errorf("store: release %s %s/%s: %w", version, os, arch, err)
	}
	return r.release(), nil
}

// Releases lists the releases, newest upload first (then by version and
// platform); version "" lists every version, otherwise that one's
// platforms.
func (s *Store) Releases(ctx context.Context, version string) ([]Release, error) {
	var rows []releaseRow
	q := s.db.NewSelect().Model(&rows)
	if version != "" {
		q = q.Where("r.version = ?", version)
	}
	if err := q.OrderExpr("r.uploaded_at DESC").OrderExpr(s.orderText("r.version")).OrderExpr(s.orderText("r.os")).OrderExpr(s.orderText("r.arch")).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: releases: %w", err)
	}
	out := make([]Release, len(rows))
	for i, r := range rows {
		out[i] = r.release()
	}
	return out, nil
}

// DeleteRelease removes the release of version for one platform.
func (s *Store) DeleteRelease(ctx context.Context, version, os, arch string) error {
	res, err := s.w().NewDelete().Model((*releaseRow)(nil)).Where("version = ? AND os = ? AND arch = ?", version, os, arch).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: release %s %s/%s: %w", version, os, arch, busy(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: release %s %s/%s: %w", version, os, arch, ErrNotFound)
	}
	return nil
}

// OpenExecutionsOf lists the exec_ids of the executions of job (of its
// version, when version is not "") that are not over, oldest first.
func (s *Store) OpenExecutionsOf(ctx context.Context, job, version string) ([]string, error) {
	var ids []string
	q := s.db.NewSelect().TableExpr("executions").Column("exec_id").
		Where("job_id = ?", job).Where("status IN (?)", bun.List(openStatuses))
	if version != "" {
		q = q.Where("version = ?", version)
	}
	if err := q.OrderExpr("created_at").Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("store: open executions of %s: %w", job, err)
	}
	return ids, nil
}

// Platform is what an agent's heartbeats say about what it runs.
type Platform struct {
	OS, Arch, AgentVersion string
	Protocol               int
}

// Platforms returns the platform of each of pcs that has sent a
// heartbeat (pcs without one are left out).
func (s *Store) Platforms(ctx context.Context, pcs []string) (map[string]Platform, error) {
	out := make(map[string]Platform, len(pcs))
	var rows []struct {
		PCID         string `bun:"pc_id"`
		OS           string `bun:"os"`
		Arch         string `bun:"arch"`
		AgentVersion string `bun:"agent_version"`
		Protocol     int    `bun:"protocol"`
	}
	for _, batch := range chunks(uniq(pcs)) {
		rows = rows[:0]
		if err := s.db.NewSelect().TableExpr("agents").Column("pc_id", "os", "arch", "agent_version", "protocol").
			Where("pc_id IN (?)", bun.List(batch)).Scan(ctx, &rows); err != nil {
			return nil, fmt.Errorf("store: platforms of pcs: %w", err)
		}
		for _, r := range rows {
			out[r.PCID] = Platform{OS: r.OS, Arch: r.Arch, AgentVersion: r.AgentVersion, Protocol: r.Protocol}
		}
	}
	return out, nil
}

// VersionCount is how many agents of a group ("" for agents in none) and
// platform run an agent version.
type VersionCount struct {
	Group, OS, Arch, AgentVersion string
	Agents                        int
}

// AgentVersions counts the agents by group, platform and agent version,
// as their heartbeats say; an agent in two groups counts in both.
func (s *Store) AgentVersions(ctx context.Context) ([]VersionCount, error) {
	var rows []struct {
		Group        string `bun:"group_name"`
		OS           string `bun:"os"`
		Arch         string `bun:"arch"`
		AgentVersion string `bun:"agent_version"`
		N            int    `bun:"n"`
	}
	err := s.db.NewRaw(`SELECT COALESCE(g.group_name, '') AS group_name, a.os, a.arch, a.agent_version, COUNT(*) AS n
FROM agents AS a LEFT JOIN agent_groups AS g ON g.pc_id = a.pc_id
GROUP BY COALESCE(g.group_name, ''), a.os, a.arch, a.agent_version`).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("store: agent versions: %w", err)
	}
	out := make([]VersionCount, len(rows))
	for i, r := range rows {
		out[i] = VersionCount{Group: r.Group, OS: r.OS, Arch: r.Arch, AgentVersion: r.AgentVersion, Agents: r.N}
	}
	return out, nil
}

// FailedUpdate is an agent's latest failed target of a job.
type FailedUpdate struct {
	PCID, ExecID, Version, State, Reason string
	FinishedAt                           time.Time
}

// LatestFailures returns, for each agent whose latest finished target of
// job failed (failed, timed_out or lost), that target: newest first, at
// most limit. An agent whose latest target of the job succeeded or was
// skipped is not listed.
func (s *Store) LatestFailures(ctx context.Context, job string, limit int) ([]FailedUpdate, error) {
	var rows []struct {
		PCID       string `bun:"pc_id"`
		ExecID     string `bun:"exec_id"`
		Version    string `bun:"version"`
		State      string `bun:"state"`
		Reason     string `bun:"reason"`
		FinishedAt *int64 `bun:"finished_at"`
	}
	// The latest finished target of the job per agent (when the server
	// heard of it): no later finished target of the job for the same
	// agent. Kills and expiries say nothing about the update itself.
	err := s.db.NewRaw(`SELECT r.pc_id, r.exec_id, e.version, r.state, r.reason, r.updated_at AS finished_at
FROM results AS r JOIN executions AS e ON e.exec_id = r.exec_id
WHERE e.job_id = ? AND r.state IN ('failed', 'timed_out', 'lost')
AND NOT EXISTS (SELECT 1 FROM results AS r2 JOIN executions AS e2 ON e2.exec_id = r2.exec_id
  WHERE e2.job_id = e.job_id AND r2.pc_id = r.pc_id AND r2.state IN ('succeeded', 'failed', 'timed_out', 'lost', 'skipped')
  AND (r2.updated_at > r.updated_at OR (r2.updated_at = r.updated_at AND r2.exec_id > r.exec_id)))
ORDER BY r.updated_at DESC, r.pc_id LIMIT ?`, job, limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("store: latest failures of %s: %w", job, err)
	}
	out := make([]FailedUpdate, len(rows))
	for i, r := range rows {
		out[i] = FailedUpdate{PCID: r.PCID, ExecID: r.ExecID, Version: r.Version, State: r.State, Reason: r.Reason}
		if r.FinishedAt != nil {
			out[i].FinishedAt = time.UnixMilli(*r.FinishedAt).UTC()
		}
	}
	return out, nil
}
