package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Agent is an endpoint as its last heartbeat described it.
type Agent struct {
	PCID, Hostname, OS, OSVersion, Arch, AgentVersion string
	Protocol                                          int
	// Groups are sorted and distinct.
	Groups []string
	// Interval is the heartbeat interval the agent reported.
	Interval time.Duration
	// Running is the number of targets the agent was running.
	Running int
	// RunningExecs are the exec_ids of the targets it was running, sorted;
	// complete only when there are Running of them (see RunningComplete).
	RunningExecs []string
	// RSSBytes and CPUPercent are what the agent reported about its own
	// process (0: not reported).
	RSSBytes   int64
	CPUPercent float64
	// User is who is logged on at the PC, as its latest heartbeat said
	// ("" when nobody is or the agent does not tell).
	User string
	// FirstSeen is kept from the first upsert. OfflineAfter is LastSeen +
	// 3×Interval, or LastSeen when the agent said it is stopping.
	FirstSeen, LastSeen, OfflineAfter time.Time
}

// Online reports whether the agent counts as online at now.
func (a Agent) Online(now time.Time) bool { return now.Before(a.OfflineAfter) }

// HeartbeatLate reports whether an online agent's next heartbeat is
// overdue at now: more than one and a half intervals since the last one
// (agents jitter their beat by ±10 % and the server writes heartbeats in
// batches), well before it counts as offline after three.
func (a Agent) HeartbeatLate(now time.Time) bool {
	return a.Online(now) && a.Interval > 0 && now.Sub(a.LastSeen) > a.Interval+a.Interval/2
}

// RunningComplete reports whether RunningExecs lists every target the
// agent was running (agents that run many, and older agents, send the
// count alone).
func (a Agent) RunningComplete() bool { return len(a.RunningExecs) == a.Running }

// Agent statuses accepted by AgentFilter.Status.
const (
	AgentOnline  = "online"
	AgentOffline = "offline"
)

// AgentFilter selects agents. Empty fields match everything.
type AgentFilter struct {
	// Q matches a substring of pc_id or hostname, case-insensitively.
	Q string
	// Group matches members of this group.
	Group string
	// Status is "", "online" or "offline" at Now (time.Now() when zero).
	Status string
	// OS matches the os field exactly.
	OS string
	// Version matches the agent version exactly.
	Version string
	// Software matches agents with an installed package whose name
	// contains it, case-insensitively.
	Software string
	// Sort is one of AgentSorts, "-" first for descending ("" = pc_id).
	Sort string
	Now  time.Time
	// Limit defaults to DefaultLimit and is clamped to MaxLimit.
	Limit, Offset int
}

type agentRow struct {
	bun.BaseModel `bun:"table:agents,alias:a"`

	PCID         string `bun:"pc_id,pk"`
	Hostname     string `bun:"hostname"`
	OS           string `bun:"os"`
	OSVersion    string `bun:"os_version"`
	Arch         string `bun:"arch"`
	AgentVersion string `bun:"agent_version"`
	Protocol     int    `bun:"protocol"`
	IntervalMS   int64  `bun:"interval_ms"`
	Running      int    `bun:"running"`
	FirstSeen    int64  `bun:"first_seen"`
	LastSeen     int64  `bun:"last_seen"`
	OfflineAfter int64  `bun:"offline_after"`
	RunningExecs string `bun:"running_execs"`
	// NULL (read as 0) until the agent reports them.
	RSSBytes     int64   `bun:"rss_bytes"`
	CPUPercent   float64 `bun:"cpu_percent"`
	LoggedOnUser string  `bun:"logged_on_user"`
}

func (r *agentRow) agent() Agent {
	return Agent{
		PCID:         r.PCID,
		Hostname:     r.Hostname,
		OS:           r.OS,
		OSVersion:    r.OSVersion,
		Arch:         r.Arch,
		AgentVersion: r.AgentVersion,
		Protocol:     r.Protocol,
		Interval:     time.Duration(r.IntervalMS) * time.Millisecond,
		Running:      r.Running,
		RunningExecs: splitExecs(r.RunningExecs),
		FirstSeen:    time.UnixMilli(r.FirstSeen).UTC(),
		LastSeen:     time.UnixMilli(r.LastSeen).UTC(),
		OfflineAfter: time.UnixMilli(r.OfflineAfter).UTC(),
		RSSBytes:     r.RSSBytes,
		CPUPercent:   r.CPUPercent,
		User:         r.LoggedOnUser,
	}
}

// agentCols are the columns an upsert writes, in valuesList order.
const agentCols = "pc_id, hostname, os, os_version, arch, agent_version, protocol, interval_ms, running, running_execs, first_seen, last_seen, offline_after, rss_bytes, cpu_percent, logged_on_user"

// agentColCount is the number of agentCols.
const agentColCount = 16

// joinExecs and splitExecs store a list of exec_ids as one column: exec_ids
// never hold a comma (wire.ValidateID).
func joinExecs(ids []string) string { return strings.Join(ids, ",") }

func splitExecs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// UpsertAgents inserts or updates agents in one transaction with
// multi-row statements and replaces their groups. An existing agent keeps
// its FirstSeen, and a report older than the stored one (by LastSeen) is
// ignored. A zero FirstSeen means LastSeen; a zero OfflineAfter means
// LastSeen + 3×Interval. When agents holds the same PCID twice, the one
// with the latest LastSeen (the later one on a tie) counts.
func (s *Store) UpsertAgents(ctx context.Context, agents []Agent) error {
	byID := make(map[string]int, len(agents))
	var rows []agentRow
	groups := make(map[string][]string, len(agents))
	for i, a := range agents {
		if a.PCID == "" {
			return fmt.Errorf("store: upsert agents: agent %d has no pc_id", i)
		}
		if a.LastSeen.IsZero() {
			return fmt.Errorf("store: upsert agent %s: last_seen is required", a.PCID)
		}
		first, off := a.FirstSeen, a.OfflineAfter
		if first.IsZero() {
			first = a.LastSeen
		}
		if off.IsZero() {
			off = a.LastSeen.Add(3 * a.Interval)
		}
		r := agentRow{
			PCID:         a.PCID,
			Hostname:     clean(a.Hostname),
			OS:           clean(a.OS),
			OSVersion:    clean(a.OSVersion),
			Arch:         clean(a.Arch),
			AgentVersion: clean(a.AgentVersion),
			Protocol:     a.Protocol,
			IntervalMS:   a.Interval.Milliseconds(),
			Running:      a.Running,
			RunningExecs: joinExecs(a.RunningExecs),
			FirstSeen:    first.UnixMilli(),
			LastSeen:     a.LastSeen.UnixMilli(),
			OfflineAfter: off.UnixMilli(),
			RSSBytes:     a.RSSBytes,
			CPUPercent:   a.CPUPercent,
			LoggedOnUser: clean(a.User),
		}
		if j, ok := byID[a.PCID]; ok {
			if r.LastSeen < rows[j].LastSeen {
				continue
			}
			rows[j] = r
		} else {
			byID[a.PCID] = len(rows)
			rows = append(rows, r)
		}
		gs := make([]string, 0, len(a.Groups))
		for _, g := range a.Groups {
			if g != "" {
				gs = append(gs, clean(g))
			}
		}
		slices.Sort(gs)
		groups[a.PCID] = slices.Compact(gs)
	}
	if len(rows) == 0 {
		return nil
	}
	// A fixed order keeps concurrent upserts from deadlocking on PostgreSQL.
	slices.SortFunc(rows, func(a, b agentRow) int { return strings.Compare(a.PCID, b.PCID) })

	return s.inTx(ctx, func(tx *Store) error {
		var applied []string
		for _, batch := range chunks(rows) {
			args := make([]any, 0, len(batch)*agentColCount)
			for _, r := range batch {
				args = append(args, r.PCID, r.Hostname, r.OS, r.OSVersion, r.Arch, r.AgentVersion,
					r.Protocol, r.IntervalMS, r.Running, r.RunningExecs, r.FirstSeen, r.LastSeen, r.OfflineAfter, r.RSSBytes, r.CPUPercent, r.LoggedOnUser)
			}
			q := "INSERT INTO agents (" + agentCols + ") VALUES " + valuesList(len(batch), agentColCount) + `
ON CONFLICT (pc_id) DO UPDATE SET
	hostname = excluded.hostname, os = excluded.os, os_version = excluded.os_version,
	arch = excluded.arch, agent_version = excluded.agent_version, protocol = excluded.protocol,
	interval_ms = excluded.interval_ms, running = excluded.running, running_execs = excluded.running_execs,
	rss_bytes = excluded.rss_bytes, cpu_percent = excluded.cpu_percent, logged_on_user = excluded.logged_on_user,
	last_seen = excluded.last_seen, offline_after = excluded.offline_after
WHERE agents.last_seen <= excluded.last_seen
RETURNING pc_id`
			ids, err := queryStrings(ctx, tx.db, q, args...)
			if err != nil {
				return fmt.Errorf("store: upsert agents: %w", err)
			}
			applied = append(applied, ids...)
		}
		slices.Sort(applied)
		return tx.replaceGroups(ctx, applied, groups)
	})
}

// Seen is what a heartbeat changes when nothing else about an agent has:
// when it was last seen, until when it counts as online, and its load.
type Seen struct {
	PCID                   string
	LastSeen, OfflineAfter time.Time
	Running                int
	RunningExecs           []string
	RSSBytes               int64
	CPUPercent             float64
}

// touchAgent is the statement TouchAgents runs per agent.
const touchAgent = `UPDATE agents SET last_seen = ?, offline_after = ?, running = ?, running_execs = ?, rss_bytes = ?, cpu_percent = ?
WHERE pc_id = ? AND last_seen <= ?`

// TouchAgents records heartbeats of agents whose other facts (host, OS,
// version, groups, interval) are unchanged: only the columns of Seen are
// written, which is what almost every heartbeat is. A report older than
// the stored one is ignored. It returns the pc_ids it did not write
// because they are not in the agents table (or the stored report is
// newer); a caller with a whole report for those uses UpsertAgents.
func (s *Store) TouchAgents(ctx context.Context, seen []Seen) (missed []string, err error) {
	if len(seen) == 0 {
		return nil, nil
	}
	// One row per agent, its newest report; sorted, so that concurrent
	// writers lock rows in the same order on PostgreSQL.
	seen = slices.Clone(seen)
	slices.SortFunc(seen, func(a, b Seen) int {
		if c := strings.Compare(a.PCID, b.PCID); c != 0 {
			return c
		}
		return b.LastSeen.Compare(a.LastSeen)
	})
	seen = slices.CompactFunc(seen, func(a, b Seen) bool { return a.PCID == b.PCID })
	written := make(map[string]bool, len(seen))
	err = s.inTx(ctx, func(tx *Store) error {
		clear(written)
		// One prepared statement run per agent: about 4× cheaper on
		// SQLite than one multi-row UPDATE … FROM (VALUES …), which is
		// parsed anew for every batch.
		return tx.prepared(ctx, touchAgent, func(exec func(...any) (sql.Result, error)) error {
			for _, a := range seen {
				res, err := exec(a.LastSeen.UnixMilli(), a.OfflineAfter.UnixMilli(), a.Running, joinExecs(a.RunningExecs),
					a.RSSBytes, a.CPUPercent, a.PCID, a.LastSeen.UnixMilli())
				if err != nil {
					return fmt.Errorf("store: touch agent %s: %w", a.PCID, err)
				}
				if n, err := res.RowsAffected(); err != nil {
					return fmt.Errorf("store: touch agent %s: %w", a.PCID, err)
				} else if n > 0 {
					written[a.PCID] = true
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for _, a := range seen {
		if !written[a.PCID] {
			missed = append(missed, a.PCID)
		}
	}
	return missed, nil
}

// replaceGroups makes the groups of the agents ids those in want, writing
// only for the agents whose groups changed (most heartbeats change none).
func (s *Store) replaceGroups(ctx context.Context, ids []string, want map[string][]string) error {
	var changed []string
	for _, batch := range chunks(ids) {
		have := make([]Agent, len(batch))
		for i, id := range batch {
			have[i].PCID = id
		}
		if err := s.fillGroups(ctx, have); err != nil {
			return err
		}
		for _, a := range have {
			if !slices.Equal(a.Groups, want[a.PCID]) {
				changed = append(changed, a.PCID)
			}
		}
	}
	for _, batch := range chunks(changed) {
		if _, err := s.db.NewDelete().TableExpr("agent_groups").
			Where("pc_id IN (?)", bun.List(batch)).Exec(ctx); err != nil {
			return fmt.Errorf("store: replace agent groups: %w", err)
		}
	}
	var pairs []any
	flush := func() error {
		if len(pairs) == 0 {
			return nil
		}
		q := "INSERT INTO agent_groups (pc_id, group_name) VALUES " + valuesList(len(pairs)/2, 2)
		if _, err := s.db.ExecContext(ctx, q, pairs...); err != nil {
			return fmt.Errorf("store: insert agent groups: %w", err)
		}
		pairs = pairs[:0]
		return nil
	}
	for _, id := range changed {
		for _, g := range want[id] {
			if pairs = append(pairs, id, g); len(pairs) == 2*batchRows {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// Agent returns one agent with its groups.
func (s *Store) Agent(ctx context.Context, pcID string) (Agent, error) {
	var r agentRow
	err := s.db.NewSelect().Model(&r).Where("a.pc_id = ?", pcID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, fmt.Errorf("store: agent %s: %w", pcID, ErrNotFound)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("store: agent %s: %w", pcID, err)
	}
	as := []Agent{r.agent()}
	if err := s.fillGroups(ctx, as); err != nil {
		return Agent{}, err
	}
	return as[0], nil
}

// AgentSorts are the columns the agents list sorts by.
var AgentSorts = map[string]string{"pc": "a.pc_id", "hostname": "LOWER(a.hostname)", "os": "a.os",
	"version": "a.agent_version", "last_seen": "a.last_seen"}

// Agents returns one page of the agents f selects, ordered by f.Sort
// (then pc_id), and the number of agents it selects in all.
func (s *Store) Agents(ctx context.Context, f AgentFilter) ([]Agent, int, error) {
	limit, offset := page(f.Limit, f.Offset)
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	// filter applies f to a query on agents (alias a).
	filter := func(q *bun.SelectQuery) (*bun.SelectQuery, error) {
		if f.Q != "" {
			// pc_id or hostname containing it, or an IP address starting with it.
			p := likePattern(f.Q)
			ip := strings.TrimPrefix(likePattern(strings.TrimSpace(f.Q)), "%") // a prefix
			q = q.Where("(LOWER(a.pc_id) LIKE ? ESCAPE '!' OR LOWER(a.hostname) LIKE ? ESCAPE '!' OR a.pc_id IN (SELECT i.pc_id FROM agent_ips AS i WHERE i.ip LIKE ? ESCAPE '!'))",
				p, p, ip)
		}
		if f.Version != "" {
			q = q.Where("a.agent_version = ?", f.Version)
		}
		if f.Software != "" {
			// Through the few matching names and the name_id index, not every agent's list.
			q = q.Where("a.pc_id IN (SELECT sw.pc_id FROM agent_software AS sw WHERE sw.name_id IN (SELECT n.id FROM software_names AS n WHERE n.name_lower LIKE ? ESCAPE '!'))",
				likePattern(f.Software))
		}
		if f.Group != "" {
			q = q.Where("a.pc_id IN (SELECT g.pc_id FROM agent_groups AS g WHERE g.group_name = ?)", f.Group)
		}
		switch f.Status {
		case "":
		case AgentOnline:
			q = q.Where("a.offline_after > ?", now.UnixMilli())
		case AgentOffline:
			q = q.Where("a.offline_after <= ?", now.UnixMilli())
		default:
			return nil, fmt.Errorf("store: agent status %q is not %q or %q", f.Status, AgentOnline, AgentOffline)
		}
		if f.OS != "" {
			q = q.Where("a.os = ?", f.OS)
		}
		return q, nil
	}
	var rows []agentRow
	pageQ, err := filter(s.db.NewSelect().Model(&rows))
	if err != nil {
		return nil, 0, err
	}
	countQ, _ := filter(s.db.NewSelect().TableExpr("agents AS a"))
	// The count and the page run side by side (two connections) unless
	// this is a transaction.
	var total int
	countErr := make(chan error, 1)
	count := func() {
		n, err := countQ.Count(ctx)
		total = int(n)
		countErr <- err
	}
	if s.root != nil {
		go count()
	} else {
		count()
	}
	if col, desc := strings.CutPrefix(f.Sort, "-"); f.Sort != "" {
		expr, ok := AgentSorts[col]
		if !ok {
			<-countErr
			return nil, 0, fmt.Errorf("store: cannot sort agents by %q", f.Sort)
		}
		if desc {
			expr += " DESC"
		}
		pageQ = pageQ.OrderExpr(expr)
	}
	if err := pageQ.OrderExpr(s.orderText("a.pc_id")).Limit(int64(limit)).Offset(int64(offset)).Scan(ctx); err != nil {
		<-countErr
		return nil, 0, fmt.Errorf("store: list agents: %w", err)
	}
	if err := <-countErr; err != nil {
		return nil, 0, fmt.Errorf("store: count agents: %w", err)
	}
	as := make([]Agent, len(rows))
	for i := range rows {
		as[i] = rows[i].agent()
	}
	if err := s.fillGroups(ctx, as); err != nil {
		return nil, 0, err
	}
	return as, total, nil
}

// fillGroups sets the Groups of as in one query per batch.
func (s *Store) fillGroups(ctx context.Context, as []Agent) error {
	idx := make(map[string]int, len(as))
	ids := make([]string, len(as))
	for i, a := range as {
		idx[a.PCID] = i
		ids[i] = a.PCID
	}
	for _, batch := range chunks(ids) {
		var pairs []struct {
			PCID      string `bun:"pc_id"`
			GroupName string `bun:"group_name"`
		}
		if err := s.db.NewSelect().TableExpr("agent_groups").Column("pc_id", "group_name").
			Where("pc_id IN (?)", bun.List(batch)).Scan(ctx, &pairs); err != nil {
			return fmt.Errorf("store: agent groups: %w", err)
		}
		for _, p := range pairs {
			a := &as[idx[p.PCID]]
			a.Groups = append(a.Groups, p.GroupName)
		}
	}
	for i := range as {
		slices.Sort(as[i].Groups)
	}
	return nil
}

// AgentCounts returns how many agents are online at now, and how many
// there are.
func (s *Store) AgentCounts(ctx context.Context, now time.Time) (online, total int, err error) {
	err = s.db.NewSelect().TableExpr("agents").
		ColumnExpr("COUNT(CASE WHEN offline_after > ? THEN 1 END)", now.UnixMilli()).
		ColumnExpr("COUNT(*)").
		Scan(ctx, &online, &total)
	if err != nil {
		return 0, 0, fmt.Errorf("store: count agents: %w", err)
	}
	return online, total, nil
}

// Groups returns every group name some agent reported, sorted.
func (s *Store) Groups(ctx context.Context) ([]string, error) {
	var gs []string
	if err := s.db.NewSelect().TableExpr("agent_groups").ColumnExpr("DISTINCT group_name").
		Scan(ctx, &gs); err != nil {
		return nil, fmt.Errorf("store: groups: %w", err)
	}
	slices.Sort(gs)
	return gs, nil
}

// ResolveTarget returns the sorted distinct pc_ids a target means: every
// known agent when all is set, the members of any of groups, and every PC
// in pcs (listed PCs count even when the server has never heard of them).
// online is how many of them are online at now.
func (s *Store) ResolveTarget(ctx context.Context, all bool, groups, pcs []string, now time.Time) (pcIDs []string, online int, err error) {
	var rows []struct {
		PCID         string `bun:"pc_id"`
		OfflineAfter int64  `bun:"offline_after"`
	}
	isOnline := make(map[string]bool) // every pc_id found so far
	add := func() {
		for _, r := range rows {
			isOnline[r.PCID] = now.UnixMilli() < r.OfflineAfter
		}
		rows = rows[:0]
	}
	switch {
	case all:
		if err := s.db.NewSelect().TableExpr("agents").Column("pc_id", "offline_after").Scan(ctx, &rows); err != nil {
			return nil, 0, fmt.Errorf("store: resolve target: %w", err)
		}
		add()
	case len(groups) > 0:
		for _, batch := range chunks(uniq(groups)) {
			if err := s.db.NewSelect().TableExpr("agents AS a").Column("a.pc_id", "a.offline_after").
				Where("EXISTS (SELECT 1 FROM agent_groups AS g WHERE g.pc_id = a.pc_id AND g.group_name IN (?))", bun.List(batch)).
				Scan(ctx, &rows); err != nil {
				return nil, 0, fmt.Errorf("store: resolve target groups: %w", err)
			}
			add()
		}
	}
	var listed []string
	for _, pc := range uniq(pcs) {
		if _, ok := isOnline[pc]; !ok && pc != "" {
			listed = append(listed, pc)
		}
	}
	if !all { // with all, every known agent is loaded already
		for _, batch := range chunks(listed) {
			if err := s.db.NewSelect().TableExpr("agents").Column("pc_id", "offline_after").
				Where("pc_id IN (?)", bun.List(batch)).Scan(ctx, &rows); err != nil {
				return nil, 0, fmt.Errorf("store: resolve target pcs: %w", err)
			}
			add()
		}
	}
	for _, pc := range listed {
		if _, ok := isOnline[pc]; !ok {
			isOnline[pc] = false
		}
	}
	pcIDs = make([]string, 0, len(isOnline))
	for pc, on := range isOnline {
		pcIDs = append(pcIDs, pc)
		if on {
			online++
		}
	}
	slices.Sort(pcIDs)
	return pcIDs, online, nil
}

// uniq returns the sorted distinct values of xs.
func uniq(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

// queryStrings runs a query whose rows have one text column.
func queryStrings(ctx context.Context, db bun.IDB, query string, args ...any) ([]string, error) {
	return scanStrings(db.QueryContext(ctx, query, args...))
}

// scanStrings reads the one text column of every row of a query's answer.
func scanStrings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
