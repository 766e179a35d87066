package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/fleet"
	"github.com/kanadehq/kanade/store"
	"github.com/kanadehq/kanade/views"
)

// bytesText formats a size in binary units: "16 GiB", "512 MiB".
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := "KMGTP"[exp : exp+1]
	if v >= 100 || v == float64(int64(v)) {
		return fmt.Sprintf("%.0f %siB", v, suffix)
	}
	return fmt.Sprintf("%.1f %siB", v, suffix)
}

// offlineFor says how long an offline agent has been silent since its
// last heartbeat ("3h", "2d"); "" while it is online.
func offlineFor(a store.Agent, now time.Time) string {
	if a.Online(now) {
		return ""
	}
	if a.LastSeen.IsZero() {
		return "never seen"
	}
	return "offline " + strings.TrimSuffix(timeText(a.LastSeen, now).Rel, " ago")
}

// blockedReason says why nothing can reach an agent whose identity was
// revoked or rejected ("" otherwise): its key can no longer connect, so
// Run, Ping and Refresh would only wait for it.
func blockedReason(id *views.AgentIdentity) string {
	if id == nil || (id.Status != store.KeyRevoked && id.Status != store.KeyRejected) {
		return ""
	}
	why := id.Status
	if id.DecidedBy != "" {
		why += " by " + id.DecidedBy
	}
	if id.Reason != "" && id.Reason != why {
		why += ": " + id.Reason
	}
	return why + " — its key can no longer connect, so nothing can run on it"
}

// agentPageExtras adds to an agent's page its addresses and why nothing
// can reach it, if so.
func (s *server) agentPageExtras(ctx context.Context, m *views.AgentModel) error {
	rows := []views.AgentRow{m.Agent}
	if err := s.withAddresses(ctx, rows); err != nil {
		return err
	}
	m.Agent, m.Blocked = rows[0], blockedReason(m.Identity)
	return nil
}

// withAddresses adds each agent's IP addresses (its newest inventory's)
// to the rows of the agents list.
func (s *server) withAddresses(ctx context.Context, rows []views.AgentRow) error {
	pcs := make([]string, len(rows))
	for i, r := range rows {
		pcs[i] = r.PCID
	}
	addrs, err := s.Store.AgentAddresses(ctx, pcs)
	if err != nil {
		return err
	}
	for i := range rows {
		rows[i].IPs = addrs[rows[i].PCID]
	}
	return nil
}

// inventoryView formats an agent's inventory for its page; swQ filters
// the software list.
func (s *server) inventoryView(c echo.Context, pc, swQ string) (*views.InventoryView, error) {
	ctx := c.Request().Context()
	inv, err := s.Store.AgentInventory(ctx, pc)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := s.Now()
	o, h := inv.OS, inv.Hardware
	v := &views.InventoryView{Collected: timeText(inv.CollectedAt, now), Received: timeText(inv.ReceivedAt, now),
		OSName: o.Name, OSVersion: o.Version, OSRelease: o.Release, OSBuild: o.Build, OSKind: o.Kind,
		LastBoot: timeText(o.LastBoot, now), Installed: timeText(o.InstallDate, now),
		Manufacturer: h.Manufacturer, Model: h.Model, Serial: h.SerialNumber, BIOS: h.BIOSVersion, CPU: h.CPUModel,
		Cores: h.CPUCores, Logical: h.CPULogical, Errors: inv.Errors, Truncated: inv.Truncated, SoftwareQ: swQ,
		SoftwareTotal: len(inv.Software)}
	if h.RAMBytes > 0 {
		v.RAM = bytesText(h.RAMBytes)
	}
	for _, d := range inv.Disks {
		dv := views.DiskView{Mount: d.Mount, Device: d.Device, FS: d.FS, Size: bytesText(d.SizeBytes), Free: bytesText(d.FreeBytes)}
		if d.SizeBytes > 0 {
			dv.UsedPercent = int((d.SizeBytes - d.FreeBytes) * 100 / d.SizeBytes)
		}
		v.Disks = append(v.Disks, dv)
	}
	for _, n := range inv.Network {
		v.NICs = append(v.NICs, views.NICView{Name: n.Name, MAC: n.MAC, IPs: strings.Join(append(append([]string(nil), n.IPv4...), n.IPv6...), ", ")})
	}
	sw := inv.Software
	if swQ != "" {
		if sw, err = s.Store.AgentSoftware(ctx, pc, swQ); err != nil {
			return nil, err
		}
	}
	for _, p := range sw {
		v.Software = append(v.Software, views.SoftwareRow{Name: p.Name, Version: p.Version, Publisher: p.Publisher, Installed: p.InstallDate})
	}
	for _, hf := range inv.Hotfixes {
		v.Hotfixes = append(v.Hotfixes, views.HotfixRow{ID: hf.ID, Installed: hf.InstalledOn})
	}
	return v, nil
}

// fleetService is the service that reaches agents; a server without one
// cannot.
func (s *server) fleetService(what string) (*fleet.Service, error) {
	if s.Fleet == nil {
		return nil, echo.NewHTTPError(http.StatusConflict, "this server cannot "+what+" agents")
	}
	return s.Fleet, nil
}

// refreshInventory asks one agent to collect and report its inventory now.
func (s *server) refreshInventory(c echo.Context) error {
	pc, err := idParam(c, "pc", "agent")
	if err != nil {
		return err
	}
	f, err := s.fleetService("reach")
	if err != nil {
		return err
	}
	if err := f.RefreshInventory(c.Request().Context(), pc, actor(c)); err != nil {
		return err
	}
	if isAPI(c) || isPartial(c) {
		return c.JSON(http.StatusAccepted, map[string]any{"pc_id": pc, "requested": true})
	}
	return c.Redirect(http.StatusSeeOther, "/agents/"+url.PathEscape(pc))
}

// pingAgent pings one agent and says how long its answer took.
func (s *server) pingAgent(c echo.Context) error {
	pc, err := idParam(c, "pc", "agent")
	if err != nil {
		return err
	}
	f, err := s.fleetService("ping")
	if err != nil {
		return err
	}
	rtt, err := f.Ping(c.Request().Context(), pc)
	switch {
	case errors.Is(err, fleet.ErrNoAnswer) && isAPI(c):
		return apiErr(http.StatusGatewayTimeout, "no_answer", fmt.Sprintf("%s did not answer within %s", pc, fleet.PingTimeout), nil)
	case errors.Is(err, fleet.ErrNoAnswer):
		return c.HTML(http.StatusOK, `<span class="field-error" data-testid="ping-result">no answer within 5s</span>`)
	case err != nil:
		return err
	}
	ms := float64(rtt.Microseconds()) / 1000
	if isAPI(c) {
		return c.JSON(http.StatusOK, map[string]any{"pc_id": pc, "rtt_ms": ms})
	}
	return c.HTML(http.StatusOK, fmt.Sprintf(`<span class="muted" data-testid="ping-result">answered in %.1f ms</span>`, ms))
}
