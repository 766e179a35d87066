package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/kanadehq/kanade/agent/wire"
)

// Inventory is an agent's newest inventory as stored.
type Inventory struct {
	wire.Inventory
	ReceivedAt time.Time
}

// softwareID is a software name's id: a hash of its lower-case form, so
// writers need no lookup.
func softwareID(nameLower string) int64 {
	h := fnv.New64a()
	h.Write([]byte(nameLower))
	return int64(h.Sum64() >> 1)
}

// PutInventories stores the newest inventory of each PC in one
// transaction. A section whose collector failed (Inventory.Failed) keeps
// what was stored before; of the OS and hardware sections, the fields a
// failed collector still filled replace the stored ones (a partial
// result: the hardware of one WMI class of three, or an OS read from the
// registry, which older agents report as failed when WMI fails).
func (s *Store) PutInventories(ctx context.Context, invs []wire.Inventory, now time.Time) error {
	return s.inTx(ctx, func(tx *Store) error {
		for i := range invs {
			if err := tx.putInventory(ctx, &invs[i], now); err != nil {
				return fmt.Errorf("store: inventory of %s: %w", invs[i].PCID, err)
			}
		}
		return nil
	})
}

func (s *Store) putInventory(ctx context.Context, inv *wire.Inventory, now time.Time) error {
	pc := inv.PCID
	errs, _ := json.Marshal(inv.Errors)
	cols := []string{"pc_id", "collected_at", "received_at", "errors", "truncated"}
	args := []any{pc, inv.CollectedAt.UnixMilli(), now.UnixMilli(), string(errs), inv.Truncated}
	// A scalar section is written whole, or, when its collector failed,
	// only the fields the report filled.
	type field struct {
		col    string
		v      any
		filled bool
	}
	section := func(failed bool, fields ...field) {
		for _, f := range fields {
			if !failed || f.filled {
				cols, args = append(cols, f.col), append(args, f.v)
			}
		}
	}
	o := inv.OS
	section(inv.Failed(wire.SectionOS),
		field{"os_name", clean(o.Name), o.Name != ""}, field{"os_version", clean(o.Version), o.Version != ""},
		field{"os_release", clean(o.Release), o.Release != ""}, field{"os_build", clean(o.Build), o.Build != ""},
		field{"os_kind", o.Kind, o.Kind != ""}, field{"install_date", millis(o.InstallDate), !o.InstallDate.IsZero()},
		field{"last_boot", millis(o.LastBoot), !o.LastBoot.IsZero()})
	h := inv.Hardware
	section(inv.Failed(wire.SectionHardware),
		field{"manufacturer", clean(h.Manufacturer), h.Manufacturer != ""}, field{"model", clean(h.Model), h.Model != ""},
		field{"serial_number", clean(h.SerialNumber), h.SerialNumber != ""}, field{"bios_version", clean(h.BIOSVersion), h.BIOSVersion != ""},
		field{"cpu_model", clean(h.CPUModel), h.CPUModel != ""}, field{"cpu_cores", h.CPUCores, h.CPUCores != 0},
		field{"cpu_logical", h.CPULogical, h.CPULogical != 0}, field{"ram_bytes", h.RAMBytes, h.RAMBytes != 0})
	set := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		set = append(set, c+" = EXCLUDED."+c)
	}
	q := "INSERT INTO agent_inventory (" + strings.Join(cols, ", ") + ") VALUES " + valuesList(1, len(cols)) +
		" ON CONFLICT (pc_id) DO UPDATE SET " + strings.Join(set, ", ")
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return err
	}
	replace := func(table string, cols []string, rows [][]any) error {
		if _, err := s.db.ExecContext(ctx, "DELETE FROM "+table+" WHERE pc_id = ?", pc); err != nil {
			return err
		}
		for _, batch := range chunks(rows) {
			var flat []any
			for _, r := range batch {
				flat = append(flat, r...)
			}
			q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " + valuesList(len(batch), len(cols)) + " ON CONFLICT DO NOTHING"
			if _, err := s.db.ExecContext(ctx, q, flat...); err != nil {
				return err
			}
		}
		return nil
	}
	if !inv.Failed(wire.SectionDisks) {
		var rows [][]any
		for _, d := range inv.Disks {
			rows = append(rows, []any{pc, clean(d.Mount), clean(d.Device), clean(d.Label), clean(d.FS), d.SizeBytes, d.FreeBytes})
		}
		if err := replace("agent_disks", []string{"pc_id", "mount", "device", "label", "fs", "size_bytes", "free_bytes"}, rows); err != nil {
			return err
		}
	}
	if !inv.Failed(wire.SectionNetwork) {
		var nics, ips [][]any
		for _, n := range inv.Network {
			nics = append(nics, []any{pc, clean(n.Name), n.MAC, strings.Join(n.IPv4, ","), strings.Join(n.IPv6, ",")})
			for _, ip := range append(append([]string(nil), n.IPv4...), n.IPv6...) {
				ips = append(ips, []any{pc, strings.ToLower(ip)})
			}
		}
		if err := replace("agent_nics", []string{"pc_id", "name", "mac", "ipv4", "ipv6"}, nics); err != nil {
			return err
		}
		if err := replace("agent_ips", []string{"pc_id", "ip"}, ips); err != nil {
			return err
		}
	}
	if !inv.Failed(wire.SectionSoftware) {
		var names, rows [][]any
		seen := map[int64]bool{}
		for _, p := range inv.Software {
			name := clean(p.Name)
			lower := strings.ToLower(name)
			id := softwareID(lower)
			if !seen[id] {
				seen[id] = true
				names = append(names, []any{id, name, lower})
			}
			rows = append(rows, []any{pc, id, clean(p.Version), clean(p.Publisher), p.InstallDate})
		}
		for _, batch := range chunks(names) {
			var flat []any
			for _, r := range batch {
				flat = append(flat, r...)
			}
			if _, err := s.db.ExecContext(ctx, "INSERT INTO software_names (id, name, name_lower) VALUES "+valuesList(len(batch), 3)+" ON CONFLICT DO NOTHING", flat...); err != nil {
				return err
			}
		}
		if err := replace("agent_software", []string{"pc_id", "name_id", "version", "publisher", "install_date"}, rows); err != nil {
			return err
		}
	}
	if !inv.Failed(wire.SectionHotfixes) {
		var rows [][]any
		for _, h := range inv.Hotfixes {
			rows = append(rows, []any{pc, clean(h.ID), h.InstalledOn})
		}
		if err := replace("agent_hotfixes", []string{"pc_id", "id", "installed_on"}, rows); err != nil {
			return err
		}
	}
	return nil
}

// AgentInventory returns a PC's stored inventory.
func (s *Store) AgentInventory(ctx context.Context, pc string) (Inventory, error) {
	var r struct {
		CollectedAt, ReceivedAt                        int64
		OSName, OSVersion, OSRelease, OSBuild, OSKind  string
		InstallDate, LastBoot                          *int64
		Manufacturer, Model, SerialNumber, BIOSVersion string
		CPUModel                                       string
		CPUCores, CPULogical                           int
		RAMBytes                                       int64
		Errors                                         string
		Truncated                                      bool
	}
	err := s.db.QueryRowContext(ctx, `SELECT collected_at, received_at, os_name, os_version, os_release, os_build, os_kind, install_date, last_boot,
manufacturer, model, serial_number, bios_version, cpu_model, cpu_cores, cpu_logical, ram_bytes, errors, truncated
FROM agent_inventory WHERE pc_id = ?`, pc).Scan(&r.CollectedAt, &r.ReceivedAt, &r.OSName, &r.OSVersion, &r.OSRelease, &r.OSBuild, &r.OSKind,
		&r.InstallDate, &r.LastBoot, &r.Manufacturer, &r.Model, &r.SerialNumber, &r.BIOSVersion, &r.CPUModel, &r.CPUCores, &r.CPULogical,
		&r.RAMBytes, &r.Errors, &r.Truncated)
	if errors.Is(err, sql.ErrNoRows) {
		return Inventory{}, fmt.Errorf("store: inventory of %s: %w", pc, ErrNotFound)
	}
	if err != nil {
		return Inventory{}, fmt.Errorf("store: inventory of %s: %w", pc, err)
	}
	inv := Inventory{ReceivedAt: time.UnixMilli(r.ReceivedAt).UTC()}
	inv.PCID, inv.CollectedAt, inv.Truncated = pc, time.UnixMilli(r.CollectedAt).UTC(), r.Truncated
	inv.OS = wire.OSInfo{Name: r.OSName, Version: r.OSVersion, Release: r.OSRelease, Build: r.OSBuild, Kind: r.OSKind,
		InstallDate: fromMillis(r.InstallDate), LastBoot: fromMillis(r.LastBoot)}
	inv.Hardware = wire.Hardware{Manufacturer: r.Manufacturer, Model: r.Model, SerialNumber: r.SerialNumber, BIOSVersion: r.BIOSVersion,
		CPUModel: r.CPUModel, CPUCores: r.CPUCores, CPULogical: r.CPULogical, RAMBytes: r.RAMBytes}
	_ = json.Unmarshal([]byte(r.Errors), &inv.Errors)
	rows, err := s.db.QueryContext(ctx, "SELECT mount, device, label, fs, size_bytes, free_bytes FROM agent_disks WHERE pc_id = ? ORDER BY mount", pc)
	if err != nil {
		return inv, fmt.Errorf("store: disks of %s: %w", pc, err)
	}
	for rows.Next() {
		var d wire.Disk
		if err := rows.Scan(&d.Mount, &d.Device, &d.Label, &d.FS, &d.SizeBytes, &d.FreeBytes); err != nil {
			rows.Close()
			return inv, err
		}
		inv.Disks = append(inv.Disks, d)
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, "SELECT name, mac, ipv4, ipv6 FROM agent_nics WHERE pc_id = ? ORDER BY name", pc)
	if err != nil {
		return inv, fmt.Errorf("store: network of %s: %w", pc, err)
	}
	for rows.Next() {
		var n wire.NIC
		var v4, v6 string
		if err := rows.Scan(&n.Name, &n.MAC, &v4, &v6); err != nil {
			rows.Close()
			return inv, err
		}
		n.IPv4, n.IPv6 = splitList(v4), splitList(v6)
		inv.Network = append(inv.Network, n)
	}
	rows.Close()
	if inv.Software, err = s.AgentSoftware(ctx, pc, ""); err != nil {
		return inv, err
	}
	rows, err = s.db.QueryContext(ctx, "SELECT id, installed_on FROM agent_hotfixes WHERE pc_id = ? ORDER BY installed_on DESC, id", pc)
	if err != nil {
		return inv, fmt.Errorf("store: hotfixes of %s: %w", pc, err)
	}
	defer rows.Close()
	for rows.Next() {
		var h wire.Hotfix
		if err := rows.Scan(&h.ID, &h.InstalledOn); err != nil {
			return inv, err
		}
		inv.Hotfixes = append(inv.Hotfixes, h)
	}
	return inv, rows.Err()
}

// AgentAddresses returns, for each of pcs that reported its network, its
// IP addresses from its newest inventory: IPv4 before IPv6, interfaces
// by name, without loopback and link-local addresses (which say nothing
// about where a PC is).
func (s *Store) AgentAddresses(ctx context.Context, pcs []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, batch := range chunks(pcs) {
		var rows []struct {
			PCID string `bun:"pc_id"`
			IPv4 string `bun:"ipv4"`
			IPv6 string `bun:"ipv6"`
		}
		if err := s.db.NewSelect().TableExpr("agent_nics").Column("pc_id", "ipv4", "ipv6").
			Where("pc_id IN (?)", bun.List(batch)).OrderExpr("pc_id, name").Scan(ctx, &rows); err != nil {
			return nil, fmt.Errorf("store: agent addresses: %w", err)
		}
		v6 := map[string][]string{}
		for _, r := range rows {
			for _, a := range splitList(r.IPv4) {
				if ip, err := netip.ParseAddr(a); err == nil && ip.IsGlobalUnicast() {
					out[r.PCID] = append(out[r.PCID], a)
				}
			}
			for _, a := range splitList(r.IPv6) {
				if ip, err := netip.ParseAddr(a); err == nil && ip.IsGlobalUnicast() {
					v6[r.PCID] = append(v6[r.PCID], a)
				}
			}
		}
		for pc, as := range v6 {
			out[pc] = append(out[pc], as...)
		}
	}
	return out, nil
}

// AgentSoftware lists a PC's software by name; q keeps names containing it.
func (s *Store) AgentSoftware(ctx context.Context, pc, q string) ([]wire.Package, error) {
	query := `SELECT n.name, sw.version, sw.publisher, sw.install_date FROM agent_software AS sw
JOIN software_names AS n ON n.id = sw.name_id WHERE sw.pc_id = ?`
	args := []any{pc}
	if q != "" {
		query += " AND n.name_lower LIKE ? ESCAPE '!'"
		args = append(args, likePattern(q))
	}
	rows, err := s.db.QueryContext(ctx, query+" ORDER BY n.name_lower, sw.version", args...)
	if err != nil {
		return nil, fmt.Errorf("store: software of %s: %w", pc, err)
	}
	defer rows.Close()
	var out []wire.Package
	for rows.Next() {
		var p wire.Package
		if err := rows.Scan(&p.Name, &p.Version, &p.Publisher, &p.InstallDate); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Count is a value and how many agents have it.
type Count struct {
	Value string
	N     int
}

// FleetBreakdown counts agents by operating system (the inventory's OS
// name, else the heartbeat's os) and by agent version, most common first.
func (s *Store) FleetBreakdown(ctx context.Context) (byOS, byVersion []Count, err error) {
	scan := func(q string) ([]Count, error) {
		rows, err := s.db.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("store: fleet breakdown: %w", err)
		}
		defer rows.Close()
		var out []Count
		for rows.Next() {
			var c Count
			if err := rows.Scan(&c.Value, &c.N); err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, rows.Err()
	}
	if byOS, err = scan(`SELECT COALESCE(NULLIF(i.os_name, ''), a.os) AS v, COUNT(*) AS n FROM agents AS a
LEFT JOIN agent_inventory AS i ON i.pc_id = a.pc_id GROUP BY v ORDER BY n DESC, v LIMIT 20`); err != nil {
		return nil, nil, err
	}
	if byVersion, err = scan(`SELECT agent_version AS v, COUNT(*) AS n FROM agents GROUP BY v ORDER BY n DESC, v LIMIT 20`); err != nil {
		return nil, nil, err
	}
	return byOS, byVersion, nil
}
