// Package inventory collects what an agent reports about its PC: OS,
// hardware, disks, network, installed software and (on Windows) hotfixes.
//
// Each OS has its own collectors (collect_windows.go: WMI and the
// registry; collect_linux.go: /etc and /proc, dpkg or rpm;
// collect_darwin.go: sw_vers, sysctl, statfs). What they read is turned
// into wire types by pure functions in convert.go and parse.go, which have
// no build tags and are tested everywhere with fixtures.
//
// A collector that fails or hangs costs its section, not the report: it
// is named in Inventory.Errors and the others go on.
package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kanadehq/kanade/agent/wire"
)

// DefaultTimeout bounds Collect when ctx has no deadline.
const DefaultTimeout = 2 * time.Minute

// collectorTimeout bounds one collector, so that a hung WMI query or
// statfs leaves time for the others.
const collectorTimeout = 45 * time.Second

// collector fills part of an inventory. It writes only into the inventory
// it is given (a scratch one, merged into the report when it returns in
// time), and may return data together with an error (a partial result).
type collector struct {
	section string // wire.Section*
	name    string // what failed, within the section ("Win32_BIOS"); may be empty
	fn      func(ctx context.Context, inv *wire.Inventory) error
}

// Collect gathers this PC's inventory (all but PCID, which the caller
// sets). Collectors that fail or time out are named in Errors; Collect
// itself fails only when ctx is cancelled, and then still returns what it
// collected so far.
func Collect(ctx context.Context) (wire.Inventory, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	inv := wire.Inventory{Protocol: wire.ProtocolVersion, CollectedAt: time.Now().UTC()}
	inv.Hostname, _ = os.Hostname()
	run(ctx, &inv, collectors(), collectorTimeout)
	if err := ctx.Err(); errors.Is(err, context.Canceled) {
		return inv, fmt.Errorf("inventory: %w", err)
	}
	return inv, nil
}

// run runs the collectors one after the other, each bounded by per and by
// ctx, and merges what each produced into inv.
func run(ctx context.Context, inv *wire.Inventory, cs []collector, per time.Duration) {
	for _, c := range cs {
		if err := ctx.Err(); err != nil {
			inv.Errors = append(inv.Errors, c.label()+"not collected: "+err.Error())
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, per)
		part := new(wire.Inventory)
		done := make(chan error, 1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					done <- fmt.Errorf("panic: %v", r)
				}
			}()
			done <- c.fn(cctx, part)
		}()
		var err error
		finished := true
		select {
		case err = <-done:
		case <-cctx.Done():
			select { // it may have finished just now
			case err = <-done:
			default:
				finished = false
			}
		}
		cancel()
		switch {
		case !finished && ctx.Err() != nil:
			// The goroutine may still be running (WMI calls cannot be
			// cancelled); it writes only into part, which is dropped.
			inv.Errors = append(inv.Errors, c.label()+"interrupted: "+ctx.Err().Error())
		case !finished:
			inv.Errors = append(inv.Errors, c.label()+"timed out after "+per.String())
		default:
			merge(inv, part)
			if err != nil {
				inv.Errors = append(inv.Errors, c.label()+err.Error())
			}
		}
	}
}

// fallbackNote is the Errors entry of a section that a collector filled
// from a fallback source after its main source failed: it names the
// section and the fallback ("os (from the registry): …") without the
// "section:" prefix of a failure (wire.Inventory.Failed), so the server
// stores the section.
func fallbackNote(section, from string, err error) string {
	return section + " (from " + from + "): " + err.Error()
}

func (c collector) label() string {
	if c.name == "" {
		return c.section + ": "
	}
	return c.section + ": " + c.name + ": "
}

// merge copies what src has into dst: non-zero scalars replace, lists are
// appended.
func merge(dst, src *wire.Inventory) {
	set(&dst.Hostname, src.Hostname)
	o, so := &dst.OS, src.OS
	set(&o.Name, so.Name)
	set(&o.Version, so.Version)
	set(&o.Release, so.Release)
	set(&o.Build, so.Build)
	set(&o.Kind, so.Kind)
	if !so.InstallDate.IsZero() {
		o.InstallDate = so.InstallDate
	}
	if !so.LastBoot.IsZero() {
		o.LastBoot = so.LastBoot
	}
	h, sh := &dst.Hardware, src.Hardware
	set(&h.Manufacturer, sh.Manufacturer)
	set(&h.Model, sh.Model)
	set(&h.SerialNumber, sh.SerialNumber)
	set(&h.BIOSVersion, sh.BIOSVersion)
	set(&h.CPUModel, sh.CPUModel)
	set(&h.CPUCores, sh.CPUCores)
	set(&h.CPULogical, sh.CPULogical)
	set(&h.RAMBytes, sh.RAMBytes)
	dst.Disks = append(dst.Disks, src.Disks...)
	dst.Network = append(dst.Network, src.Network...)
	dst.Software = append(dst.Software, src.Software...)
	dst.Hotfixes = append(dst.Hotfixes, src.Hotfixes...)
	dst.Errors = append(dst.Errors, src.Errors...)
}

func set[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// Encode validates inv (see wire.Inventory.Validate) and encodes it in at
// most limit bytes (0 means wire.MaxInventoryBytes; a larger limit is
// lowered to it). When the report is too big, software entries and then
// hotfixes are dropped from the end and Truncated is set.
func Encode(inv *wire.Inventory, limit int) ([]byte, error) {
	if limit <= 0 || limit > wire.MaxInventoryBytes {
		limit = wire.MaxInventoryBytes
	}
	if err := inv.Validate(); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	for {
		b, err := json.Marshal(inv)
		if err != nil {
			return nil, fmt.Errorf("inventory: encode: %w", err)
		}
		if len(b) <= limit {
			return b, nil
		}
		inv.Truncated = true
		// Cut in proportion to the excess, with a margin, at least one.
		switch {
		case len(inv.Software) > 0:
			inv.Software = inv.Software[:shrinkTo(len(inv.Software), len(b), limit)]
		case len(inv.Hotfixes) > 0:
			inv.Hotfixes = inv.Hotfixes[:shrinkTo(len(inv.Hotfixes), len(b), limit)]
		default:
			return nil, fmt.Errorf("inventory: %d bytes without software and hotfixes, more than the limit of %d", len(b), limit)
		}
	}
}

// shrinkTo is how many of n entries to keep when size bytes must become
// limit.
func shrinkTo(n, size, limit int) int {
	keep := int(float64(n) * float64(limit) / float64(size) * 0.95)
	return max(0, min(keep, n-1))
}
