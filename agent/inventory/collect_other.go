//go:build !windows && !linux && !darwin

package inventory

import (
	"context"
	"runtime"

	"github.com/kanadehq/kanade/agent/wire"
)

// collectors on other systems report only the OS name and the network.
func collectors() []collector {
	return []collector{
		{wire.SectionOS, "", func(ctx context.Context, inv *wire.Inventory) error {
			inv.OS.Name = runtime.GOOS
			return nil
		}},
		{wire.SectionNetwork, "", collectNetwork},
	}
}
